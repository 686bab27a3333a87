"""Distributed loading from S3 (SeaweedFS on loopback): gloo ranks started as processes
(tests/testing/ranks.py) load through the drop-in as vLLM does, each rank's requests going
through a fault proxy that counts the bytes it sends, so that what the ranks pulled from
storage is measured from the server's side, not taken from the library's own counters.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from safetensors.torch import save_file  # noqa: E402

from stores import FaultProxy  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "testing"))
from ranks import data_bytes, expected_digests, run_ranks  # noqa: E402

SHARED = {"RUNAI_STREAMER_DIST": "1", "RUNAI_STREAMER_DIST_BUFFER_MIN_BYTESIZE": "262144"}


@pytest.fixture
def s3_model(s3_prefix, tmp_path):
    """(local copies, s3 URIs) of a two-shard model of about 1.3 MB, in a fresh prefix."""
    directory = tmp_path / "model"
    directory.mkdir()
    g = torch.Generator().manual_seed(11)
    local, uris = [], []
    for shard in range(2):
        tensors = {f"model.{shard}.w{i}": torch.randn(96 + 17 * i, 256, generator=g)
                   .to(torch.float16 if i % 3 else torch.float32) for i in range(10)}
        tensors[f"model.{shard}.bias"] = torch.randn(7, generator=g)
        path = directory / f"model-{shard:05d}-of-00002.safetensors"
        save_file(tensors, str(path))
        local.append(str(path))
        uris.append(s3_prefix.upload(path.name, path))
    return local, uris


@pytest.fixture
def s3(s3_prefix):
    return s3_prefix.store


def proxy_for(s3, *extra: str) -> FaultProxy:
    return FaultProxy(s3, *extra)


def header_bytes(s3, uris, tmp_path) -> int:
    """What one rank pulls to read the headers: measured through a counting proxy by a
    rank that shares nothing (RUNAI_STREAMER_DIST=0) and loads only the smallest tensor."""
    proxy = proxy_for(s3, "--plan", "ok")
    try:
        run_ranks(tmp_path, [{"paths": uris, "names": ["model.0.bias"]}],
                  env={**s3.endpoint_env(proxy.port), "RUNAI_STREAMER_DIST": "0"})
        return proxy.stats()["body_bytes"] - 7 * 4
    finally:
        proxy.close()


@pytest.mark.parametrize("world", [2, 4])
def test_ranks_pull_the_model_from_s3_once(s3, s3_model, tmp_path, world):
    local, uris = s3_model
    headers = header_bytes(s3, uris, tmp_path / "headers")
    proxy = proxy_for(s3, "--plan", "ok")
    try:
        run = run_ranks(tmp_path / "run", [{"paths": uris} for _ in range(world)],
                        env={**SHARED, **s3.endpoint_env(proxy.port)})
        pulled = proxy.stats()["body_bytes"]
    finally:
        proxy.close()
    expected = expected_digests(local)
    for result in run.results:
        assert result is not None and result["ok"], result and result["error"]
        assert {n: e[:3] for n, e in result["tensors"].items()} == expected
    # Each rank reads the headers; the tensors' bytes leave storage once in all.
    assert pulled == data_bytes(local) + world * headers


def test_tensor_names_per_rank_from_s3(s3_model, tmp_path):
    local, uris = s3_model
    wanted = [["model.0.w3", "model.1.w9"], ["model.1.w9", "model.1.bias"]]
    run = run_ranks(tmp_path, [{"paths": uris, "names": names} for names in wanted],
                    env=SHARED)
    for names, result in zip(wanted, run.results):
        assert result["ok"], result["error"]
        assert {n: e[:3] for n, e in result["tensors"].items()} == \
            expected_digests(local, set(names))


def test_storage_failing_for_one_rank_midway_fails_every_rank(s3, s3_model, tmp_path):
    """Rank 1's store answers 500 to every read once the headers are read (two ranged
    GETs per file: the length prefix, then the JSON)."""
    local, uris = s3_model
    failing = proxy_for(s3, "--plan", "500", "--faults-after", "4")
    try:
        run = run_ranks(
            tmp_path, [{"paths": uris} for _ in range(3)], timeout=120,
            env={**SHARED, "RUNAI_STREAMER_DIST_TIMEOUT": "60"},
            rank_env=[{}, {**s3.endpoint_env(failing.port),
                           "TENSORSTREAM_HTTP_RETRY_BUDGET_MS": "1500"}, {}])
    finally:
        failing.close()
    assert not run.timed_out
    for result in run.results:
        assert result is not None and not result["ok"]
        assert "DistributedError" in result["error_classes"]
        assert "rank 1 of 3" in result["error"] and "500" in result["error"], result["error"]
        assert uris[0].rsplit("/", 1)[0] in result["error"]  # the object's URI
        assert result["seconds"] < 50


def test_storage_stalling_for_one_rank_fails_every_rank_within_the_timeout(s3, s3_model,
                                                                          tmp_path):
    """Rank 1's reads stall after the headers: it reports that no bytes came in half the
    timeout, and every rank raises naming it."""
    local, uris = s3_model
    stalling = proxy_for(s3, "--plan", "stall", "--stall-seconds", "120",
                         "--faults-after", "4")
    try:
        run = run_ranks(
            tmp_path, [{"paths": uris} for _ in range(3)], timeout=120,
            env={**SHARED, "RUNAI_STREAMER_DIST_TIMEOUT": "8"},
            rank_env=[{}, s3.endpoint_env(stalling.port), {}])
    finally:
        stalling.close()
    assert not run.timed_out
    for result in run.results:
        assert result is not None and not result["ok"]
        assert "rank 1 of 3" in result["error"] and "no bytes from storage" in result["error"]
        assert result["seconds"] < 30
