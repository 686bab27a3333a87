"""Shared helpers for the Python tests.

The tests import the installed packages (pip install --no-build-isolation .), never the
source tree, so they check what users get. TENSORSTREAM_LIBRARY may point the binding at
another build of the library.
"""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "testing"))
from tensor_checks import as_bytes, assert_same, random_tensor, read_tree, reference  # noqa: E402,F401






def save(tensors: dict, path) -> str:
    safetensors_torch.save_file(tensors, str(path))
    return str(path)


@pytest.fixture
def model_files(tmp_path):
    """Three shards of a small Llama-like model with mixed dtypes, sizes and shapes."""
    g = torch.Generator().manual_seed(1)
    paths = []
    for shard in range(3):
        tensors = {
            f"layers.{shard}.attn.q.weight": random_tensor(torch.bfloat16, (64, 64), g),
            f"layers.{shard}.attn.k.weight": random_tensor(torch.float16, (32, 64), g),
            f"layers.{shard}.mlp.up.weight": random_tensor(torch.float32, (128, 96), g),
            f"layers.{shard}.norm.weight": random_tensor(torch.float32, (64,), g),
            f"layers.{shard}.empty": torch.empty(0, 7),
            f"layers.{shard}.scale": torch.tensor(float(shard)),
        }
        paths.append(save(tensors, tmp_path / f"model-{shard:05d}-of-00003.safetensors"))
    return paths
