#!/usr/bin/env python3
"""Creates the S3 integration-test fixtures with boto3 (the reference client).

    setup_fixtures.py --endpoint http://127.0.0.1:PORT --bucket B --local-copy PATH

Uploads to bucket B (created if missing), with credentials from the AWS_* environment:
  data/model.bin          20 MiB + 12,345 bytes of seeded random data; also written to PATH
                          so the C++ tests compare against the same bytes
  data/always-503.bin     small; the fault proxy answers 503 for it forever
  data/stall-forever.bin  small; the fault proxy stalls on it
  odd keys/ünï code+plus=&.bin   a key that needs percent-encoding
  many/key-00000.txt … many/key-01099.txt   1,100 keys (pagination: > 1,000 per page)
  many/sub/nested.txt     one level down (non-recursive listings show many/sub/)
"""
import argparse
import random
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

MANY = 1100


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--local-copy", required=True)
    args = parser.parse_args()
    s3 = boto3.client(
        "s3",
        endpoint_url=args.endpoint,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 10},
                      max_pool_connections=16),
    )
    existing = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
    if args.bucket not in existing:
        s3.create_bucket(Bucket=args.bucket)

    data = random.Random(20240611).randbytes(20 * 1024 * 1024 + 12345)
    with open(args.local_copy, "wb") as f:
        f.write(data)
    objects = {
        "data/model.bin": data,
        "data/always-503.bin": b"x" * 1000,
        "data/stall-forever.bin": b"y" * 1000,
        "odd keys/\u00fcn\u00ef code+plus=&.bin": b"odd key contents",
        "many/sub/nested.txt": b"nested",
    }
    for i in range(MANY):
        objects[f"many/key-{i:05d}.txt"] = f"object {i}\n".encode()

    def put(item):
        key, body = item
        s3.put_object(Bucket=args.bucket, Key=key, Body=body)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, objects.items()))
    print(f"uploaded {len(objects)} objects to {args.bucket}")


if __name__ == "__main__":
    main()
