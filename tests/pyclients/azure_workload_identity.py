"""azure-identity's WorkloadIdentityCredential against the Entra ID that AZURE_AUTHORITY_HOST names.

Arguments: tenant id, client id, federated token file. Trusts the CA in REQUESTS_CA_BUNDLE. Prints
{"token", "expires_on"} as JSON, or {"error"} with the SDK's message when Entra ID refuses.
"""
import json
import sys

from azure.core.exceptions import ClientAuthenticationError
from azure.identity import WorkloadIdentityCredential

tenant_id, client_id, token_file = sys.argv[1:4]
credential = WorkloadIdentityCredential(
    tenant_id=tenant_id,
    client_id=client_id,
    token_file_path=token_file,
    disable_instance_discovery=True,
)
try:
    token = credential.get_token("https://containerregistry.azure.net/.default")
except ClientAuthenticationError as error:
    print(json.dumps({"error": str(error)}))
else:
    print(json.dumps({"token": token.token, "expires_on": token.expires_on}))
