"""Host memory: a consumer that drops tensors stays within the memory limit."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import save

MiB = 1 << 20
TENSOR_BYTES = 4 * MiB
TENSORS = 48  # a 192 MiB file


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    tensors = {f"layer.{i}.weight": torch.full((TENSOR_BYTES // 4,), float(i))
               for i in range(TENSORS)}
    return save(tensors, tmp_path_factory.mktemp("rss") / "big.safetensors")


def peak_growth(path: str, limit: int, mode: str) -> int:
    probe = Path(__file__).with_name("rss_probe.py")
    result = subprocess.run([sys.executable, str(probe), path, str(limit), mode],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["count"] == TENSORS
    return report["growth"]


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_dropping_consumer_stays_within_the_limit(big_file):
    limit = 24 * MiB
    # The limit, the tensor being consumed, and allocator slack.
    assert peak_growth(big_file, limit, "drop") <= limit + 2 * TENSOR_BYTES + 24 * MiB


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_keeping_consumer_holds_the_whole_file(big_file):
    # The control for the test above: the measurement sees memory that is really held.
    assert peak_growth(big_file, 24 * MiB, "keep") >= TENSORS * TENSOR_BYTES * 0.9
