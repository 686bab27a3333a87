"""The Python device path (tensorstream.load/stream and the drop-in with device="cuda:N")
on a stand-in CUDA runtime, so that it runs in CI without a GPU: one stream for every
file, bytes equal to safetensors', device memory owned by the tensors (freed when they
are, never before), bounded ahead of a consumer that drops them, freed after an error or
an early stop. Each scenario runs in a process of its own (tests/testing/
fake_device_worker.py); tests/gpu repeats the checks that need a real GPU.

The stand-in is build/tests/libtensorstream_fake_cudart.so (TENSORSTREAM_FAKE_CUDART
names another); scripts/test.sh sets it, and a missing one fails there.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import random_tensor, safetensors_torch, save, torch

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "tests" / "testing" / "fake_device_worker.py"
FAKE = Path(os.environ.get("TENSORSTREAM_FAKE_CUDART",
                           ROOT / "build" / "tests" / "libtensorstream_fake_cudart.so"))


def run(tmp_path, scenario: str, **args) -> dict:
    if not FAKE.exists():
        if os.environ.get("TENSORSTREAM_FAKE_CUDART"):
            pytest.fail(f"no stand-in CUDA runtime at {FAKE}")
        pytest.skip(f"no stand-in CUDA runtime at {FAKE}: build the project (build/)")
    arguments = tmp_path / f"{scenario}.json"
    arguments.write_text(json.dumps(args))
    done = subprocess.run([sys.executable, str(WORKER), scenario, str(arguments)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TENSORSTREAM_CUDART": str(FAKE)})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def many_tensors(tmp_path):
    """Two files of 64 tensors of 64 KiB each (8 MiB in all)."""
    g = torch.Generator().manual_seed(5)
    return [save({f"f{f}.t{i}": random_tensor(torch.float32, (128, 128), g) for i in range(64)},
                 tmp_path / f"many-{f}.safetensors") for f in range(2)]


def tensor_bytes(paths) -> int:
    return sum(t.numel() * t.element_size()
               for p in paths for t in safetensors_torch.load_file(p).values())


def test_load_streams_every_file_in_one_stream_into_tensors_that_own_the_memory(
        tmp_path, model_files):
    result = run(tmp_path, "load", paths=model_files)
    assert result["digests"] == result["expected"]
    assert result["dtypes_ok"]
    assert result["streams"] == ["cuda:0"], "one device stream for all the files"
    assert result["live_while_held"] >= tensor_bytes(model_files)  # the tensors hold it
    assert result["live_after"] == 0  # and free it with the last of them


def test_stream_keeps_device_memory_bounded_for_a_consumer_that_drops_tensors(
        tmp_path, many_tensors):
    limit = 256 << 10  # 4 tensors
    result = run(tmp_path, "bounded", paths=many_tensors, limit=limit)
    assert result["digests"] == result["expected"]
    assert result["streams"] == ["cuda:0"]
    assert result["peak"] - result["baseline"] <= 2 * limit + (64 << 10)
    assert result["live_after"] == 0


def test_dropin_stream_files_on_the_device_uses_one_stream(tmp_path, model_files):
    result = run(tmp_path, "dropin", paths=model_files)
    assert result["digests"] == result["expected"]
    assert result["streams"] == ["cuda:0"]
    assert result["live_while_held"] >= tensor_bytes(model_files)
    assert result["live_after"] == 0


def test_an_error_in_one_file_names_it_and_frees_the_device_memory(tmp_path, many_tensors):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(Path(many_tensors[1]).read_bytes()[:-1000])
    result = run(tmp_path, "error", paths=[many_tensors[0], str(broken)])
    assert result["error"] is not None and str(broken) in result["error"]
    assert result["live_after"] == 0


def test_a_consumer_that_stops_early_frees_what_it_did_not_take(tmp_path, many_tensors):
    result = run(tmp_path, "early_stop", paths=many_tensors, take=3)
    assert result["live_with_taken"] >= result["taken_bytes"] == 3 * (64 << 10)
    assert result["live_after"] == 0
