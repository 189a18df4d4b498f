"""google-auth's Compute Engine credentials against the metadata server that GCE_METADATA_HOST names.

Prints {"token", "expiry", "email"} as JSON; the Rust test (tests/cloud_gcp_azure.rs) asserts them.
"""
import json

import google.auth.compute_engine
import google.auth.transport.requests

credentials = google.auth.compute_engine.Credentials()
credentials.refresh(google.auth.transport.requests.Request())
print(json.dumps({
    "token": credentials.token,
    "expiry": credentials.expiry.isoformat() if credentials.expiry else None,
    "email": credentials.service_account_email,
}))
