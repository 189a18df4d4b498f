"""google-auth's Compute Engine credentials against the metadata server that GCE_METADATA_HOST names.

Prints {"ping", "token", "expiry", "email"} as JSON; the Rust test (tests/cloud_gcp_azure.rs) asserts them.
"""
import json

import google.auth.compute_engine
import google.auth.transport.requests
from google.auth.compute_engine import _metadata

request = google.auth.transport.requests.Request()
# google-auth's own test of "is this a metadata server": 200 and `Metadata-Flavor: Google` (GCE_METADATA_IP).
ping = _metadata.ping(request)
credentials = google.auth.compute_engine.Credentials()
credentials.refresh(request)
print(json.dumps({
    "ping": ping,
    "token": credentials.token,
    "expiry": credentials.expiry.isoformat() if credentials.expiry else None,
    "email": credentials.service_account_email,
}))
