"""Distributed loading (tensorstream._distributed, the drop-in's is_distributed=True): ranks
of a gloo group on this machine, started as processes (tests/testing/ranks.py), each
loading through the drop-in exactly as vLLM calls it. Checked: every rank yields every
(wanted) tensor with the bytes safetensors.safe_open reads, each tensor owning its memory;
the bytes the ranks read add up to the model once; failures and hangs of one rank make
every rank raise, within the timeout, naming the rank and the cause. The same against S3
(bytes counted by the server's side) is in tests/stores/test_distributed_s3.py.
"""
from __future__ import annotations

import random
import shutil
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch.distributed")
from safetensors.torch import save_file  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "testing"))
from ranks import data_bytes, expected_digests, run_ranks  # noqa: E402

from tensorstream._partition import Piece, partition, share_bytes  # noqa: E402

# gloo is used only with RUNAI_STREAMER_DIST=1 (auto means NCCL only). Small staging
# buffers make a load take many rounds.
SHARED = {"RUNAI_STREAMER_DIST": "1", "RUNAI_STREAMER_DIST_BUFFER_MIN_BYTESIZE": "65536"}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """Two shards of mixed dtypes and sizes, one tensor far larger than the others (it is
    split between ranks), and empty tensors."""
    directory = tmp_path_factory.mktemp("model")
    g = torch.Generator().manual_seed(7)
    paths = []
    for shard in range(2):
        tensors = {f"layers.{shard}.w{i}": torch.randn(64 + 29 * i, 48, generator=g)
                   .to(torch.bfloat16 if i % 2 else torch.float32) for i in range(8)}
        tensors[f"layers.{shard}.embed"] = torch.randint(0, 255, (300_000,), generator=g,
                                                         dtype=torch.uint8)
        tensors[f"layers.{shard}.empty"] = torch.empty(0, 5)
        tensors[f"layers.{shard}.scalar"] = torch.tensor(3.5 + shard, dtype=torch.float64)
        path = directory / f"model-{shard:05d}-of-00002.safetensors"
        save_file(tensors, str(path))
        paths.append(str(path))
    return paths


def assert_exact(result: dict, expected: dict, own_storage: bool = True) -> None:
    """The rank's tensors are exactly ``expected``; in a shared load each has a storage of
    its own (the plain stream's tensors may be views of one block, never reused)."""
    assert result is not None and result["ok"], result and result["error"]
    got = {name: entry[:3] for name, entry in result["tensors"].items()}
    assert got == expected
    if own_storage:
        assert all(entry[3] for entry in result["tensors"].values()), "a tensor shares storage"


# -- the partition ----------------------------------------------------------------------

def test_partition_balances_bytes_and_splits_large_ranges():
    sizes = [(0, 1000), (1, 10), (2, 0), (3, 7), (4, 3000)]
    shares = partition(sizes, 4)
    total = sum(size for _, size in sizes)
    assert share_bytes(shares) == [total * (r + 1) // 4 - total * r // 4 for r in range(4)]
    # Every range is covered exactly once, piece after piece.
    for index, size in sizes:
        pieces = sorted((p for share in shares for p in share if p.range_index == index),
                        key=lambda p: p.start)
        covered = 0
        for piece in pieces:
            assert piece.start == covered and piece.length > 0
            covered += piece.length
        assert covered == size
    assert shares[0] == [Piece(0, 0, 1000), Piece(1, 0, 4)]  # 4017 bytes: 1004 each


def test_partition_random_loads_are_covered_once_and_balanced():
    rng = random.Random(3)
    for _ in range(300):
        sizes = [(i, rng.choice([0, 1, 2, rng.randrange(1, 5000)]))
                 for i in range(rng.randrange(0, 40))]
        ranks = rng.randrange(1, 9)
        shares = partition(sizes, ranks)
        per_rank = share_bytes(shares)
        assert max(per_rank, default=0) - min(per_rank, default=0) <= 1
        seen = {}
        for share in shares:
            for piece in share:
                seen.setdefault(piece.range_index, []).append(piece)
        assert {i for i, s in sizes if s} == set(seen)
        assert all(sum(p.length for p in seen[i]) == s for i, s in sizes if s)


def test_partition_with_fewer_bytes_than_ranks():
    assert share_bytes(partition([(0, 2)], 5)).count(0) == 3
    with pytest.raises(ValueError):
        partition([(0, 1)], 0)


# -- loads --------------------------------------------------------------------------------

@pytest.mark.parametrize("world", [2, 4])
def test_every_rank_gets_every_tensor_and_storage_is_read_once(model, tmp_path, world):
    """vLLM's call: stream_files(files, device="cpu", is_distributed=True)."""
    run = run_ranks(tmp_path, [{"paths": model} for _ in range(world)], env=SHARED)
    expected = expected_digests(model)
    for result in run.results:
        assert_exact(result, expected)
    read = [result["bytes_read"] for result in run.results]
    assert sum(read) == data_bytes(model)
    assert max(read) - min(read) <= 1  # balanced by bytes


def test_file_chunks_api_shares_the_reads(model, tmp_path):
    """DistributedStreamer.stream_files with FileChunks: every range to every rank."""
    run = run_ranks(tmp_path, [{"paths": model, "api": "chunks"} for _ in range(3)],
                    env=SHARED)
    expected = {name: entry[2] for name, entry in expected_digests(model).items()}
    for result in run.results:
        assert result["ok"], result["error"]
        assert {name: entry[2] for name, entry in result["tensors"].items()} == expected
    assert sum(r["bytes_read"] for r in run.results) == data_bytes(model)


def test_each_rank_gets_only_its_tensor_names(model, tmp_path):
    """Ranks may ask for different tensors: the group reads their union once, and each rank
    yields exactly what it asked for."""
    wanted = [["layers.0.w1", "layers.1.embed", "layers.0.empty"],
              ["layers.1.embed", "layers.1.w7"],
              ["layers.0.scalar"]]
    run = run_ranks(tmp_path, [{"paths": model, "names": names} for names in wanted],
                    env=SHARED)
    for names, result in zip(wanted, run.results):
        assert_exact(result, expected_digests(model, set(names)))
    union = set().union(*map(set, wanted))
    assert sum(r["bytes_read"] for r in run.results) == data_bytes(model, union)


def test_ranks_on_two_hosts_read_once_per_host_or_once_globally(model, tmp_path):
    """Ranks grouped by host name: a host with one rank reads alone, the two ranks of the
    other share; with RUNAI_STREAMER_DIST_GLOBAL=1 all three share."""
    hosts = ["node-b", "node-a", "node-b"]
    for global_group, copies in (("0", 2), ("1", 1)):
        run = run_ranks(tmp_path / global_group,
                        [{"paths": model, "host": host} for host in hosts],
                        env={**SHARED, "RUNAI_STREAMER_DIST_GLOBAL": global_group})
        expected = expected_digests(model)
        for result in run.results:
            assert_exact(result, expected)
        assert sum(r["bytes_read"] for r in run.results) == copies * data_bytes(model)


def test_without_dist_1_gloo_is_not_used_and_every_rank_reads_everything(model, tmp_path):
    """auto (the default) shares only over NCCL, as the reference does."""
    run = run_ranks(tmp_path, [{"paths": model} for _ in range(2)],
                    env={"RUNAI_STREAMER_DIST": "auto"})
    for result in run.results:
        assert_exact(result, expected_digests(model), own_storage=False)
        assert result["bytes_read"] == 0  # no shared load: the plain stream read it all


# -- failures -----------------------------------------------------------------------------

def test_a_file_one_rank_cannot_read_makes_every_rank_raise(model, tmp_path):
    """Rank 1 sees a truncated copy of a shard (same header, data cut short)."""
    broken = tmp_path / "broken"
    broken.mkdir()
    copies = [str(shutil.copy(path, broken)) for path in model]
    with open(copies[1], "r+b") as f:
        f.truncate(Path(copies[1]).stat().st_size - 1000)
    run = run_ranks(tmp_path / "run", [{"paths": model}, {"paths": copies}, {"paths": model}],
                    env=SHARED, timeout=120)
    assert not run.timed_out
    for result in run.results:
        assert not result["ok"]
        assert "DistributedError" in result["error_classes"]
        assert "rank 1 of 3" in result["error"] and copies[1] in result["error"]
    # On the rank that met it, the error is also what the reference raises there.
    assert "ValueError" in run.results[1]["error_classes"]


def test_a_hanging_rank_makes_the_others_raise_within_the_timeout(model, tmp_path):
    run = run_ranks(tmp_path, [{"paths": model}, {"paths": model, "behaviour": "hang"},
                               {"paths": model}],
                    env={**SHARED, "RUNAI_STREAMER_DIST_TIMEOUT": "4"}, wait_for=[0, 2],
                    timeout=90)
    assert not run.timed_out, "a rank waited past the timeout"
    for rank in (0, 2):
        result = run.results[rank]
        assert not result["ok"]
        assert "DistributedError" in result["error_classes"]
        assert "RUNAI_STREAMER_DIST_TIMEOUT=4" in result["error"]
        assert result["seconds"] < 60


def test_a_rank_that_dies_midway_makes_the_others_raise_naming_it(model, tmp_path):
    ranks = [{"paths": model}, {"paths": model, "behaviour": "die-after", "after": 3},
             {"paths": model}]
    run = run_ranks(tmp_path, ranks, env={**SHARED, "RUNAI_STREAMER_DIST_TIMEOUT": "20"},
                    timeout=120)
    assert not run.timed_out
    assert run.results[1] is None  # it died
    for rank in (0, 2):
        result = run.results[rank]
        assert not result["ok"] and "DistributedError" in result["error_classes"]
        assert "rank 1" in result["error"], result["error"]


def test_ranks_loading_different_models_raise(model, tmp_path):
    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(10)}, str(other))
    run = run_ranks(tmp_path / "run", [{"paths": model}, {"paths": [str(other)]}],
                    env=SHARED, timeout=120)
    for result in run.results:
        assert not result["ok"] and "load other files" in result["error"]


def test_bad_distributed_settings_name_the_variable(monkeypatch):
    from tensorstream._distributed import read_settings

    for name, value in (("RUNAI_STREAMER_DIST_TIMEOUT", "soon"),
                        ("RUNAI_STREAMER_DIST_TIMEOUT", "0"),
                        ("RUNAI_STREAMER_CUDA_ALIGNMENT", str(2 << 20)),
                        ("RUNAI_STREAMER_DIST_BUFFER_MIN_BYTESIZE", "-1")):
        monkeypatch.setenv(name, value)
        with pytest.raises(ValueError, match=name):
            read_settings()
        monkeypatch.delenv(name)
    assert read_settings().timeout_seconds == 600
