"""Shared helpers for the Python tests.

The tests import the installed packages (pip install --no-build-isolation .), never the
source tree, so they check what users get. TENSORSTREAM_LIBRARY may point the binding at
another build of the library.
"""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")
from safetensors import safe_open  # noqa: E402


def random_tensor(dtype, shape, generator=None):
    """A tensor of `dtype` and `shape` filled with random bit patterns (bool: 0/1)."""
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=generator).to(torch.bool)
    itemsize = torch.empty((), dtype=dtype).element_size()
    count = 1
    for dim in shape:
        count *= dim
    raw = torch.randint(0, 256, (count * itemsize,), dtype=torch.uint8, generator=generator)
    return raw.view(dtype).reshape(shape)


def as_bytes(tensor) -> bytes:
    """The bytes of a CPU tensor, whatever its dtype (NaN patterns compare equal)."""
    return tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def assert_same(actual, expected, name=""):
    assert actual.dtype == expected.dtype, name
    assert tuple(actual.shape) == tuple(expected.shape), name
    assert as_bytes(actual) == as_bytes(expected), name


def reference(path) -> dict:
    """Every tensor of a file as safetensors' own loader returns it."""
    with safe_open(str(path), framework="pt") as f:
        return {name: f.get_tensor(name) for name in f.keys()}


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
