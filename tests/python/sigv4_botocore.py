"""Signs the SigV4 cases of crates/bursar-providers/tests/sigv4.json with
botocore (the AWS SDK for Python's signer). `python sigv4_botocore.py --write` fills in the
expected headers; the test group checks that botocore still computes exactly them, and
bursar-providers' bedrock tests check that Bursar's signer does too."""

import datetime
import json
import pathlib
import sys
from unittest import mock

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

CASES = pathlib.Path(__file__).resolve().parents[2] / "crates/bursar-providers/tests/sigv4.json"


def sign(case: dict) -> dict:
    creds = Credentials(case["access_key_id"], case["secret_access_key"], case.get("session_token"))
    request = AWSRequest(method="POST", url=case["url"], data=case["body"].encode(), headers=dict(case["headers"]))
    when = datetime.datetime.strptime(case["time"], "%Y%m%dT%H%M%SZ")
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        SigV4Auth(creds, "bedrock", case["region"]).add_auth(request)
    wanted = ["authorization", "x-amz-date", "x-amz-security-token"]
    return {k: request.headers[k] for k in request.headers.keys() if k.lower() in wanted}


def main() -> None:
    cases = json.loads(CASES.read_text())
    for case in cases:
        case["expected"] = {k.lower(): v for k, v in sign(case).items()}
    if "--write" in sys.argv:
        CASES.write_text(json.dumps(cases, indent=2) + "\n")
    print(json.dumps([c["expected"] for c in cases], indent=2))


if __name__ == "__main__":
    main()
