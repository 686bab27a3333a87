#!/usr/bin/env python3
"""Prints botocore's S3 SigV4 Authorization header for each request given on stdin.

Input (JSON list): {"method", "url" (already percent-encoded path, no query),
"params" ([[name, value], ...], unencoded), "headers" ({name: value}), "time" (epoch
seconds), "region", "access_key", "secret_key", "token" (optional)}.
Output (JSON list): {"authorization", "x-amz-date", "x-amz-content-sha256"}.

Used by tests/unit/s3_botocore_test.cc to cross-check our signer against the official
SDK's. The clock is pinned by replacing botocore.auth.get_current_datetime.
"""
import datetime
import json
import sys

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def sign(spec):
    fixed = datetime.datetime.fromtimestamp(spec["time"], tz=datetime.timezone.utc)
    botocore.auth.get_current_datetime = lambda *a, **k: fixed.replace(tzinfo=None)
    creds = Credentials(spec["access_key"], spec["secret_key"], spec.get("token") or None)
    request = AWSRequest(
        method=spec["method"],
        url=spec["url"],
        params=[tuple(p) for p in spec.get("params", [])],
        headers=spec.get("headers", {}),
        data=b"",
    )
    botocore.auth.S3SigV4Auth(creds, "s3", spec["region"]).add_auth(request)
    return {
        "authorization": request.headers["Authorization"],
        "x-amz-date": request.headers["X-Amz-Date"],
        "x-amz-content-sha256": request.headers["X-Amz-Content-SHA256"],
    }


def main():
    specs = json.load(sys.stdin)
    json.dump([sign(s) for s in specs], sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
