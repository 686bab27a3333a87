"""Fixtures for the tests against real stores on loopback (tests/stores/run.sh starts them
and exports where they are, see stores.py).

`store` runs a test once per backend (local, s3, gcs); `remote_store` once per object
store. A store whose server is not configured is skipped, unless
TENSORSTREAM_TEST_REQUIRE_STORES=1 (run.sh sets it), where that is a failure.

Each test gets its own prefix, so tests never see each other's objects.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from safetensors.torch import save_file  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "testing"))
from tensor_checks import as_bytes, assert_same, random_tensor, read_tree, reference  # noqa: E402,F401
from stores import FaultProxy, all_stores  # noqa: E402

STORES = {s.name: s for s in all_stores()}
REMOTE = [name for name, s in STORES.items() if s.remote]
# The bearer token that the authorizing proxy hands out at /token and then requires.
PROXY_TOKEN = "conformance-token-5c1e"


def _usable(name: str):
    store = STORES[name]
    if not store.available():
        message = f"no {name} server configured: run tests/stores/run.sh"
        if os.environ.get("TENSORSTREAM_TEST_REQUIRE_STORES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return store


@pytest.fixture(params=list(STORES))
def store(request):
    return _usable(request.param)


@pytest.fixture(params=REMOTE)
def remote_store(request):
    return _usable(request.param)


@pytest.fixture
def prefix(remote_store):
    """A fresh prefix of each object store in turn."""
    return remote_store.new_prefix("fronts")


@pytest.fixture
def s3_prefix():
    return _usable("s3").new_prefix("s3")


class _Proxies:
    """Fault proxies started on first use and kept for the session, one per store and kind."""

    def __init__(self):
        self.running = {}

    def get(self, store, kind: str) -> FaultProxy:
        key = (store.name, kind)
        if key not in self.running:
            if kind == "faults":
                extra = ["--stall-seconds", "5"]
            else:  # "auth": no faults, a bearer token required and handed out at /token
                extra = ["--plan", "ok", "--token", PROXY_TOKEN,
                         "--require-authorization", f"Bearer {PROXY_TOKEN}"]
            self.running[key] = FaultProxy(store, *extra)
        return self.running[key]

    def close(self):
        for proxy in self.running.values():
            proxy.close()


@pytest.fixture(scope="session")
def proxies():
    running = _Proxies()
    yield running
    running.close()


@pytest.fixture
def shards(tmp_path):
    """Three local SafeTensors shards with mixed dtypes, a multi-MiB tensor (several
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
