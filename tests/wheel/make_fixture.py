"""The fixture of the wheel and sdist tests: a safetensors file of several dtypes and shapes
(an empty tensor among them) and expected.json, which names it and gives the SHA-256 of
each tensor's bytes as safetensors.safe_open reads them.

    make_fixture.py WORK_DIR [--upload s3://BUCKET/KEY]

--upload also puts the file into the S3 store that the AWS_* variables describe (boto3),
creating the bucket, and records the URI in expected.json.
"""
import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file


def upload(path: Path, uri: str) -> None:
    import boto3

    bucket, key = uri.removeprefix("s3://").split("/", 1)
    s3 = boto3.client("s3")
    for attempt in range(5):  # the first writes can fail while SeaweedFS elects its lock server
        try:
            s3.create_bucket(Bucket=bucket)
            s3.upload_file(str(path), bucket, key)
            return
        except Exception:
            if attempt == 4:
                raise
            time.sleep(2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("work", type=Path)
    parser.add_argument("--upload")
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    tensors = {
        "embed.weight": rng.standard_normal((512, 384), dtype=np.float32),
        "layer.0.attn.weight": rng.standard_normal((256, 256)).astype(np.float16),
        "layer.0.bias": rng.integers(-2**40, 2**40, size=1000, dtype=np.int64),
        "layer.0.mask": rng.integers(0, 255, size=(3, 5, 7), dtype=np.uint8),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }
    path = args.work / "model.safetensors"
    save_file(tensors, str(path))
    with safe_open(str(path), framework="np") as f:
        digests = {name: hashlib.sha256(f.get_tensor(name).tobytes()).hexdigest()
                   for name in f.keys()}
    spec = {"local": str(path), "digests": digests}
    if args.upload:
        upload(path, args.upload)
        spec["s3_uri"] = args.upload
    (args.work / "expected.json").write_text(json.dumps(spec))


if __name__ == "__main__":
    main()
