"""Helpers shared by the Python test suites (tests/python, tests/stores): random tensors, byte
comparison against safetensors' own loader, and reading back a written directory tree."""
from __future__ import annotations

import os

import torch
from safetensors import safe_open


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
    """The bytes of a tensor, whatever its dtype (NaN patterns compare equal)."""
    return tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def assert_same(actual, expected, name=""):
    assert actual.dtype == expected.dtype, name
    assert tuple(actual.shape) == tuple(expected.shape), name
    assert as_bytes(actual) == as_bytes(expected), name


def reference(path) -> dict:
    """Every tensor of a local file as safetensors' own loader returns it."""
    with safe_open(str(path), framework="pt") as f:
        return {name: f.get_tensor(name) for name in f.keys()}


def read_tree(root) -> dict:
    """{relative path: bytes} of every file below root."""
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out
