"""botocore's own STS AssumeRoleWithWebIdentity and ECR GetAuthorizationToken, against the endpoints in
AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL_ECR (the testkit fakes), trusting AWS_CA_BUNDLE.

stdin: {"role_arn", "token", "region"}
stdout: {"access_key_id", "user", "password", "expires_in"}
"""
import base64
import datetime
import json
import sys

import botocore.session

case = json.load(sys.stdin)
session = botocore.session.get_session()
sts = session.create_client("sts", region_name=case["region"])
assumed = sts.assume_role_with_web_identity(
    RoleArn=case["role_arn"], RoleSessionName="botocore-check", WebIdentityToken=case["token"]
)
keys = assumed["Credentials"]
ecr = session.create_client(
    "ecr",
    region_name=case["region"],
    aws_access_key_id=keys["AccessKeyId"],
    aws_secret_access_key=keys["SecretAccessKey"],
    aws_session_token=keys["SessionToken"],
)
data = ecr.get_authorization_token()["authorizationData"][0]
user, password = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)
left = data["expiresAt"] - datetime.datetime.now(datetime.timezone.utc)
json.dump(
    {
        "access_key_id": keys["AccessKeyId"],
        "user": user,
        "password": password,
        "expires_in": left.total_seconds(),
    },
    sys.stdout,
)
