"""Completed tensors, taken from the C API in batches, as torch tensors or numpy arrays.

This is the per-tensor hot path (checkpoints carry hundreds of thousands of tensors), so
it makes as few Python and ctypes calls per tensor as it can:

- ``tensorstream_stream_next_batch`` hands over up to a thousand tensors per call, as an
  array of ``tensorstream_delivery`` records read here as one list of integers;
- tensors that lie in the same block of memory (a read group's buffer, or the file's
  mapping) and arrive one after the other form a *run*: the block is wrapped once, as a
  uint8 tensor over a ctypes array, and each tensor is a strided view into it;
- each tensor is marked kept (``tensorstream_tensor_keep``) as it is handed out, not when
  the batch is taken, so that the memory limit keeps bounding what is read ahead;
- the run's C handles are released together (``tensorstream_deliveries_release``) when
  the ctypes array dies, which is when the last view into the block dies.

A tensor whose address is not a multiple of its element size (the file placed it so) is
copied into memory of its own, so every tensor handed out is aligned for its dtype.
"""
from __future__ import annotations

import ctypes
from typing import Callable, Iterator

from . import _capi, _dtypes

_WORDS = 8  # 8-byte fields per tensorstream_delivery
_TENSOR, _FILE, _INDEX, _DATA, _NBYTES, _BLOCK, _BLOCK_BYTES, _DEVICE = range(_WORDS)


class Batch:
    """Deliveries of one next_batch call: ``words`` holds the records' fields (eight
    per delivery, signed), ``array`` the records themselves (released through it)."""

    __slots__ = ("array", "count", "words")

    def __init__(self, array, count: int) -> None:
        self.array = array
        self.count = count
        self.words = memoryview(array).cast("B").cast("q")[: count * _WORDS].tolist()

    def indices(self) -> list:
        """(file_index, tensor_index) of every delivery."""
        w = self.words
        return [(w[at + _FILE], w[at + _INDEX]) for at in range(0, self.count * _WORDS, _WORDS)]

    def release(self, first: int, count: int) -> None:
        """Releases the C handles of deliveries [first, first + count)."""
        if count > 0:
            _capi.lib().tensorstream_deliveries_release(
                ctypes.byref(self.array, first * ctypes.sizeof(_capi.Delivery)), count)


class _RunRelease:
    """Releases one run of deliveries when collected; attached to the ctypes array that
    every tensor of the run keeps alive (a plain attribute: far cheaper per tensor than a
    weakref.finalize)."""

    __slots__ = ("batch", "first", "count")

    def __init__(self, batch: Batch, first: int) -> None:
        self.batch = batch
        self.first = first
        self.count = 0  # final once the run is closed

    def __del__(self) -> None:
        self.batch.release(self.first, self.count)


def _block_bytes(words: list, at: int):
    """A ctypes array over the block of delivery ``at`` (None when it has no bytes)."""
    size = words[at + _BLOCK_BYTES]
    if size <= 0:
        return None
    return (ctypes.c_ubyte * size).from_address(words[at + _BLOCK])


def _runs(batches: Iterator[Batch], make_base: Callable, item: Callable):
    """Drives ``item(base, typed_cache, words, at)`` for every delivery, grouping deliveries
    into runs that share one ``make_base(ctypes array)`` and one release. Deliveries never
    turned into tensors (the consumer stopped early) are released at once."""
    keep = _capi.lib().tensorstream_tensor_keep
    for batch in batches:
        words, count = batch.words, batch.count
        i = 0
        try:
            while i < count:
                at = i * _WORDS
                block = words[at + _BLOCK]
                release = _RunRelease(batch, i)
                raw = _block_bytes(words, at)
                if raw is None:
                    base = None
                else:
                    raw._tensorstream_release = release
                    base = make_base(raw)
                del raw
                typed = {}
                try:
                    while i < count and words[i * _WORDS + _BLOCK] == block:
                        release.count += 1
                        i += 1
                        made = item(base, typed, words, (i - 1) * _WORDS)
                        keep(words[(i - 1) * _WORDS + _TENSOR])
                        yield made
                finally:
                    # From here the views alone keep the block (and so the run's handles);
                    # a run without a block is released as `release` goes.
                    base = typed = release = None
        finally:
            batch.release(i, count - i)
            batch.words = None  # kept tensors keep the batch (for its handles), not this


class _Specs:
    """What materialising a tensor needs, per (file, tensor index), made on first use:
    ``spec(info)`` turns a TensorInfo into it."""

    __slots__ = ("infos", "spec", "tables")

    def __init__(self, infos: Callable, spec: Callable) -> None:
        self.infos, self.spec, self.tables = infos, spec, {}

    def get(self, file_index: int, index: int):
        table = self.tables.get(file_index)
        if table is None:
            table = self.tables[file_index] = [None] * len(self.infos(file_index))
        spec = table[index]
        if spec is None:
            spec = table[index] = self.spec(self.infos(file_index)[index])
        return spec


def torch_items(batches: Iterator[Batch], infos: Callable) -> Iterator[tuple]:
    """``(file_index, tensor_index, tensor)`` for every delivery; ``infos(file_index)`` is
    the file's TensorInfo list."""
    import torch

    uint8 = torch.uint8
    dtypes, strides_of = {}, {}

    def spec(info):  # (dtype, shape, strides, itemsize)
        where = f"tensor '{info.name}'"
        dtype = dtypes.get(info.dtype)
        if dtype is None:
            dtype = dtypes[info.dtype] = _dtypes.torch_dtype(info.dtype, where)
        shape = _dtypes.python_shape(info.dtype, info.shape, where)
        strides = strides_of.get(shape)
        if strides is None:
            step, reversed_strides = 1, []
            for dim in reversed(shape):
                reversed_strides.append(step)
                step *= dim
            strides = strides_of[shape] = tuple(reversed(reversed_strides))
        return dtype, shape, strides, dtype.itemsize

    specs = _Specs(infos, spec)

    def make_base(raw):
        return torch.frombuffer(raw, dtype=uint8)

    def item(base, typed, words, at):
        file_index, index = words[at + _FILE], words[at + _INDEX]
        dtype, shape, strides, itemsize = specs.get(file_index, index)
        nbytes = words[at + _NBYTES]
        if nbytes == 0 or base is None:
            return file_index, index, torch.empty(shape, dtype=dtype)
        offset = words[at + _DATA] - words[at + _BLOCK]
        if offset % itemsize:  # unaligned for its dtype: a copy of its own
            tensor = torch.empty(shape, dtype=dtype)
            tensor.reshape(-1).view(uint8).copy_(base[offset:offset + nbytes])
            return file_index, index, tensor
        view = typed.get(dtype)
        if view is None:
            view = typed[dtype] = base[: base.numel() // itemsize * itemsize].view(dtype)
        return file_index, index, view.as_strided(shape, strides, offset // itemsize)

    return _runs(batches, make_base, item)


def numpy_items(batches: Iterator[Batch], infos: Callable) -> Iterator[tuple]:
    """As torch_items, with numpy arrays."""
    import numpy as np

    def spec(info):  # (dtype, shape, element count)
        where = f"tensor '{info.name}'"
        dtype = _dtypes.numpy_dtype(info.dtype, where)
        shape = _dtypes.python_shape(info.dtype, info.shape, where)
        count = 1
        for dim in shape:
            count *= dim
        return dtype, shape, count

    specs = _Specs(infos, spec)

    def make_base(raw):
        return np.frombuffer(raw, dtype=np.uint8)

    def item(base, typed, words, at):
        file_index, index = words[at + _FILE], words[at + _INDEX]
        dtype, shape, count = specs.get(file_index, index)
        nbytes = words[at + _NBYTES]
        if nbytes == 0 or base is None:
            return file_index, index, np.empty(shape, dtype=dtype)
        offset = words[at + _DATA] - words[at + _BLOCK]
        if offset % dtype.itemsize:
            return file_index, index, (base[offset:offset + nbytes].copy().view(dtype)
                                       .reshape(shape))
        view = typed.get(dtype)
        if view is None:
            view = typed[dtype] = base[: base.size // dtype.itemsize * dtype.itemsize].view(dtype)
        start = offset // dtype.itemsize
        return file_index, index, view[start:start + count].reshape(shape)

    return _runs(batches, make_base, item)


class _DeviceMemory:
    """The device memory of one delivered tensor, shown to torch through the CUDA Array
    Interface: torch keeps this object alive as long as any tensor over the memory, and
    when torch lets go of it, ``release`` frees the memory (the library's allocation, or
    its share of one) through the tensor's C handle."""

    __slots__ = ("__cuda_array_interface__", "release")

    def __init__(self, pointer: int, nbytes: int, release: _RunRelease) -> None:
        # Version 3 with "stream": None: the bytes are complete (the library waited for
        # its copies' events before delivering), so torch synchronizes with nothing.
        self.__cuda_array_interface__ = {"shape": (nbytes,), "typestr": "|u1",
                                         "data": (pointer, False), "version": 3,
                                         "strides": None, "stream": None}
        self.release = release


def wrap_device_memory(memory: _DeviceMemory, device: int):
    """A 1-D uint8 torch tensor over ``memory`` on CUDA device ``device``, without a copy.
    (The Python tests of the device path, which run on a stand-in CUDA runtime whose
    "device" memory is host memory, replace this function.)"""
    import torch

    if memory.__cuda_array_interface__["shape"][0] == 0:
        return torch.empty(0, dtype=torch.uint8, device=f"cuda:{device}")
    return torch.as_tensor(memory, device=f"cuda:{device}")


def device_items(batches: Iterator[Batch], infos: Callable) -> Iterator[tuple]:
    """``(file_index, tensor_index, tensor)`` for every delivery of a device stream whose
    tensors have no caller destination: each tensor is the device memory the library
    allocated for it, handed to torch without a copy and freed when torch frees the tensor.
    Each is marked kept as it is handed out; deliveries not handed out (the consumer
    stopped early) are released at once."""
    keep = _capi.lib().tensorstream_tensor_keep
    lookup = _Specs(infos, lambda info: info)
    for batch in batches:
        words, count = batch.words, batch.count
        i = 0
        try:
            while i < count:
                at = i * _WORDS
                file_index, index = words[at + _FILE], words[at + _INDEX]
                info = lookup.get(file_index, index)
                release = _RunRelease(batch, i)
                release.count = 1
                i += 1
                keep(words[at + _TENSOR])  # before `release` can go: an empty tensor drops it
                memory = _DeviceMemory(words[at + _DATA], words[at + _NBYTES], release)
                tensor = typed_tensor(wrap_device_memory(memory, words[at + _DEVICE]), info)
                del memory, release
                yield file_index, index, tensor
        finally:
            batch.release(i, count - i)
            batch.words = None


def typed_tensor(raw, info):
    """The tensor that ``info`` (a TensorInfo) describes, over ``raw``: a 1-D uint8 torch
    tensor of exactly its bytes, whose start is aligned for its dtype (a fresh allocation
    is). No copy."""
    import torch

    where = f"tensor '{info.name}'"
    dtype = _dtypes.torch_dtype(info.dtype, where)
    shape = _dtypes.python_shape(info.dtype, info.shape, where)
    if raw.numel() == 0:
        return torch.empty(shape, dtype=dtype, device=raw.device)
    return raw.view(dtype).view(shape)
