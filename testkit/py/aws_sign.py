"""botocore's SigV4 signer over JSON cases, for the differential test of our signer (tests/cloud_aws.rs).

stdin: [{"method", "url", "params": [[k, v]...], "headers": [[k, v]...], "body", "access_key", "secret_key",
"token" (or null), "region", "service", "time": "YYYYMMDDTHHMMSSZ"}]
stdout: [{"authorization", "x-amz-date", "x-amz-security-token"}] in the same order.
"""
import datetime
import json
import sys
from unittest import mock

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def sign(case):
    at = datetime.datetime.strptime(case["time"], "%Y%m%dT%H%M%SZ")
    request = AWSRequest(
        method=case["method"],
        url=case["url"],
        params=dict(case.get("params") or []),
        headers=dict(case.get("headers") or []),
        data=case.get("body", "").encode(),
    )
    credentials = Credentials(case["access_key"], case["secret_key"], case.get("token"))
    signer = botocore.auth.SigV4Auth(credentials, case["service"], case["region"])
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=at):
        signer.add_auth(request)
    return {
        "authorization": request.headers["Authorization"],
        "x-amz-date": request.headers["X-Amz-Date"],
        "x-amz-security-token": request.headers.get("X-Amz-Security-Token"),
    }


json.dump([sign(c) for c in json.load(sys.stdin)], sys.stdout)
