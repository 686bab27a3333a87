"""Fixtures for the front-end tests against a real S3 server (tests/s3/run.sh starts
SeaweedFS on loopback and sets AWS_ENDPOINT_URL, the AWS_* keys and
TENSORSTREAM_TEST_S3_BUCKET). Without them every test here is skipped.

Each test gets its own prefix in the bucket, so tests never see each other's objects.
"""
from __future__ import annotations

import os
import uuid

import pytest

torch = pytest.importorskip("torch")
boto3 = pytest.importorskip("boto3")
from botocore.config import Config  # noqa: E402
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "testing"))
from tensor_checks import as_bytes, assert_same, random_tensor, read_tree, reference  # noqa: E402,F401
from safetensors.torch import save_file  # noqa: E402

BUCKET = os.environ.get("TENSORSTREAM_TEST_S3_BUCKET")


@pytest.fixture(scope="session")
def s3():
    if not (BUCKET and os.environ.get("AWS_ENDPOINT_URL")):
        pytest.skip("needs an S3 server: run tests/s3/run.sh")
    return boto3.client("s3", config=Config(s3={"addressing_style": "path"},
                                            retries={"max_attempts": 10}))


class Prefix:
    """A fresh prefix of the test bucket: uploads, and the URIs of what was uploaded."""

    def __init__(self, client, name: str) -> None:
        self.client = client
        self.key = name  # no trailing '/'
        self.uri = f"s3://{BUCKET}/{name}"

    def put(self, relative: str, data: bytes) -> str:
        self.client.put_object(Bucket=BUCKET, Key=f"{self.key}/{relative}", Body=data)
        return f"{self.uri}/{relative}"

    def upload(self, relative: str, path) -> str:
        with open(path, "rb") as f:
            return self.put(relative, f.read())


@pytest.fixture
def prefix(s3):
    return Prefix(s3, f"fronts-{uuid.uuid4().hex[:12]}")



@pytest.fixture
def shards(tmp_path):
    """Three local SafeTensors shards with mixed dtypes, a multi-MiB tensor (several S3
    chunks), a zero-size and a scalar tensor."""
    g = torch.Generator().manual_seed(7)
    paths = []
    for shard in range(3):
        tensors = {
            f"layers.{shard}.big": random_tensor(torch.bfloat16, (1024, 3 * 1024 + 5), g),
            f"layers.{shard}.k": random_tensor(torch.float16, (32, 64), g),
            f"layers.{shard}.up": random_tensor(torch.float32, (128, 96), g),
            f"layers.{shard}.empty": torch.empty(0, 7),
            f"layers.{shard}.scale": torch.tensor(float(shard)),
        }
        path = tmp_path / f"model-{shard:05d}-of-00003.safetensors"
        save_file(tensors, str(path))
        paths.append(path)
    return paths


@pytest.fixture
def model_tree(prefix, shards):
    """A model prefix: shards, configs, a nested folder. {relative path: bytes}."""
    files = {p.name: p.read_bytes() for p in shards}
    files.update({"config.json": b'{"a": 1}', "tokenizer.json": b"{}", "README.md": b"# m",
                  "original/consolidated.pth": os.urandom(3000), "original/params.json": b"{}",
                  "empty.txt": b""})
    for relative, data in files.items():
        prefix.put(relative, data)
    return prefix, files



