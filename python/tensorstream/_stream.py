"""Stream: one pass of the C API's stream, and delivered tensors as torch/numpy objects.

Ownership: every tensor handed out wraps the library's own buffer (or file mapping)
without a copy. On delivery the binding calls ``tensorstream_tensor_keep`` (the bytes stop
counting against the memory limit, so reading goes on) and ties
``tensorstream_tensor_release`` to the garbage collection of the small ctypes buffer
object that the torch tensor or numpy array keeps alive. The bytes are therefore never reused while any view of them exists, they stay
valid after the stream is closed, and they are freed when the last view dies.
"""
from __future__ import annotations

import ctypes
import json
import os
import weakref
from ctypes import byref, c_char_p, c_int64, c_size_t, c_uint64
from dataclasses import dataclass
from typing import Iterable, NamedTuple, Optional, Sequence

from . import _capi, _dtypes
from ._errors import FailedPreconditionError


@dataclass
class S3Credentials:
    """Explicit object-store credentials; a None field falls back to the environment,
    profile files or instance metadata. Never logged, never part of an error message."""

    access_key_id: Optional[str] = None
    secret_access_key: Optional[str] = None
    session_token: Optional[str] = None
    region_name: Optional[str] = None
    endpoint: Optional[str] = None

    def __repr__(self) -> str:  # keeps secrets out of logs and tracebacks
        return f"S3Credentials(region_name={self.region_name!r}, endpoint={self.endpoint!r})"


class TensorInfo(NamedTuple):
    """A tensor as its file's header describes it.

    ``shape`` is the file's shape (for F4 that counts 4-bit elements); ``offset`` is the
    absolute byte offset in the file.
    """

    name: str
    dtype: str
    shape: tuple
    offset: int
    nbytes: int


class Delivered(NamedTuple):
    """A completed tensor: where it comes from and its bytes.

    ``buffer`` is a writable ctypes array over the library's memory, or None when
    ``nbytes`` is 0. The tensor is released when the buffer (and every view of it) is
    garbage-collected.
    """

    file_index: int
    index: int
    name: str
    dtype: str
    shape: tuple
    nbytes: int
    buffer: Optional[ctypes.Array]

    @property
    def where(self) -> str:
        return f"tensor '{self.name}'"

    def to_torch(self):
        """A torch tensor of the exact dtype and shape, sharing the buffer."""
        import torch

        dtype = _dtypes.torch_dtype(self.dtype, self.where)
        shape = _dtypes.python_shape(self.dtype, self.shape, self.where)
        if self.buffer is None:
            return torch.empty(shape, dtype=dtype)
        return torch.frombuffer(self.buffer, dtype=torch.uint8).view(dtype).view(shape)

    def to_numpy(self):
        """A numpy array (dtype rules in tensorstream._dtypes), sharing the buffer."""
        import numpy as np

        dtype = _dtypes.numpy_dtype(self.dtype, self.where)
        shape = _dtypes.python_shape(self.dtype, self.shape, self.where)
        if self.buffer is None:
            return np.empty(shape, dtype=dtype)
        return np.frombuffer(self.buffer, dtype=dtype).reshape(shape)


def _apply_options(options, *, concurrency, chunk_bytes, memory_limit, direct_io,
                   s3_credentials, device) -> None:
    lib = _capi.lib()
    if device is not None:
        _capi.check(lib.tensorstream_options_set_device(options, str(device).encode()))
    if concurrency is not None:
        _capi.check(lib.tensorstream_options_set_concurrency(options, int(concurrency)))
    if chunk_bytes is not None:
        _capi.check(lib.tensorstream_options_set_chunk_bytes(options, int(chunk_bytes)))
    if memory_limit is not None:
        _capi.check(lib.tensorstream_options_set_memory_limit(options, int(memory_limit)))
    if direct_io is not None:
        _capi.check(lib.tensorstream_options_set_direct_io(options, int(bool(direct_io))))
    if s3_credentials is not None:
        fields = (s3_credentials.access_key_id, s3_credentials.secret_access_key,
                  s3_credentials.session_token, s3_credentials.region_name,
                  s3_credentials.endpoint)
        _capi.check(lib.tensorstream_options_set_s3_credentials(
            options, *(None if v is None else str(v).encode() for v in fields)))


class Stream:
    """One streaming pass: add files or ranges, optionally select, start, take tensors.

    Options are read from the environment (RUNAI_STREAMER_CONCURRENCY,
    RUNAI_STREAMER_CHUNK_BYTESIZE, RUNAI_STREAMER_MEMORY_LIMIT, TENSORSTREAM_DIRECT_IO,
    TENSORSTREAM_MMAP)
    when the Stream is created; keyword arguments that are not None override them.
    With ``device="cuda:N"`` the library streams through pinned staging straight into
    device memory: give each tensor a destination with ``set_destination`` before
    ``start`` (see ``allocate_destinations``); delivered items then carry no buffer.
    A Stream is driven by one thread. ``close()`` (or leaving a ``with`` block) stops the
    reader threads; tensors already delivered stay valid.
    """

    def __init__(self, *, concurrency: Optional[int] = None, chunk_bytes: Optional[int] = None,
                 memory_limit: Optional[int] = None, direct_io: Optional[bool] = None,
                 s3_credentials: Optional[S3Credentials] = None,
                 device: Optional[str] = None) -> None:
        lib = _capi.lib()
        options = _capi.OptionsP()
        _capi.check(lib.tensorstream_options_create(byref(options)))
        try:
            _apply_options(options, concurrency=concurrency, chunk_bytes=chunk_bytes,
                           memory_limit=memory_limit, direct_io=direct_io,
                           s3_credentials=s3_credentials, device=device)
            handle = _capi.StreamP()
            _capi.check(lib.tensorstream_stream_create(options, byref(handle)))
        finally:
            lib.tensorstream_options_destroy(options)
        self._handle = handle
        self._close = weakref.finalize(self, lib.tensorstream_stream_destroy, handle)

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Cancels reading and frees the stream (idempotent)."""
        self._close()

    @property
    def _live(self):
        if not self._close.alive:
            raise FailedPreconditionError("the stream is closed")
        return self._handle

    def add_file(self, uri: str) -> int:
        """Adds a SafeTensors file (path or URI), parsing its header; returns its index."""
        index = c_size_t()
        _capi.check(_capi.lib().tensorstream_stream_add_file(
            self._live, _encode_path(uri), byref(index)))
        return index.value

    def add_ranges(self, uri: str, offset: int, sizes: Sequence[int]) -> int:
        """Adds consecutive raw byte ranges starting at ``offset``; returns the file index.
        They are delivered as U8 tensors named "0", "1", ... by position."""
        array = (c_uint64 * len(sizes))(*sizes)
        index = c_size_t()
        _capi.check(_capi.lib().tensorstream_stream_add_ranges(
            self._live, _encode_path(uri), int(offset), array, len(sizes), byref(index)))
        return index.value

    def select(self, file_index: int, names: Iterable[str]) -> None:
        """Reads only the named tensors of a file (NotFoundError for an unknown name)."""
        encoded = [n.encode() for n in names]
        array = (c_char_p * len(encoded))(*encoded)
        _capi.check(_capi.lib().tensorstream_stream_select(
            self._live, file_index, array, len(encoded)))

    def set_destination(self, file_index: int, tensor_index: int, device_ptr: int) -> None:
        """Device streams: the tensor's bytes go to ``device_ptr`` (caller-owned device
        memory of at least the tensor's size, e.g. a torch tensor's ``data_ptr()``)."""
        _capi.check(_capi.lib().tensorstream_stream_set_destination(
            self._live, file_index, tensor_index, ctypes.c_void_p(device_ptr)))

    def allocate_destinations(self, file_index: int, infos: Iterable[TensorInfo],
                              device: str) -> dict:
        """Allocates a torch tensor on ``device`` for each of ``infos`` (exact dtype and
        shape) and makes it the tensor's destination. Returns ``{tensor index: tensor}``;
        index i refers to ``self.tensors(file_index)[i]``."""
        import torch

        all_infos = self.tensors(file_index)
        position = {info.name: i for i, info in enumerate(all_infos)}
        out = {}
        for info in infos:
            where = f"tensor '{info.name}'"
            tensor = torch.empty(_dtypes.python_shape(info.dtype, info.shape, where),
                                 dtype=_dtypes.torch_dtype(info.dtype, where), device=device)
            index = position[info.name]
            if info.nbytes:
                self.set_destination(file_index, index, tensor.data_ptr())
            out[index] = tensor
        return out

    def file_count(self) -> int:
        count = c_size_t()
        _capi.check(_capi.lib().tensorstream_stream_file_count(self._live, byref(count)))
        return count.value

    def tensors(self, file_index: int) -> list:
        """The file's tensors as TensorInfo, sorted by offset (the C API's tensor index)."""
        lib, handle = _capi.lib(), self._live
        count = c_size_t()
        _capi.check(lib.tensorstream_stream_tensor_count(handle, file_index, byref(count)))
        name, dtype, ndim = c_char_p(), c_char_p(), c_size_t()
        shape, offset, nbytes = ctypes.POINTER(c_int64)(), c_uint64(), c_uint64()
        result = []
        for i in range(count.value):
            _capi.check(lib.tensorstream_stream_tensor_info(
                handle, file_index, i, byref(name), byref(dtype), byref(ndim), byref(shape),
                byref(offset), byref(nbytes)))
            result.append(TensorInfo(name.value.decode(), dtype.value.decode(),
                                     tuple(shape[:ndim.value]), offset.value, nbytes.value))
        return result

    def metadata(self, file_index: int) -> dict:
        """The header's ``__metadata__`` object ({} when absent)."""
        text = c_char_p()
        _capi.check(_capi.lib().tensorstream_stream_metadata_json(
            self._live, file_index, byref(text)))
        return json.loads(text.value.decode())

    def start(self) -> None:
        """Starts reading (MemoryLimitError, before any read, if a tensor exceeds the limit)."""
        _capi.check(_capi.lib().tensorstream_stream_start(self._live))

    def next(self) -> Optional[Delivered]:
        """Blocks for the next completed tensor (completion order); None at the end.
        Raises the stream's first error, then again on every later call."""
        lib = _capi.lib()
        tensor = _capi.TensorP()
        if _capi.check(lib.tensorstream_stream_next(self._live, byref(tensor))) == _capi.END_OF_STREAM:
            return None
        return _deliver(lib, tensor)

    def __iter__(self):
        while (item := self.next()) is not None:
            yield item

    def stats(self) -> tuple:
        """(bytes read so far, peak bytes reserved against the memory limit)."""
        read, peak = c_uint64(), c_uint64()
        _capi.check(_capi.lib().tensorstream_stream_stats(self._live, byref(read), byref(peak)))
        return read.value, peak.value


def _encode_path(uri) -> bytes:
    return os.fsencode(uri)


def _deliver(lib, tensor) -> Delivered:
    """Wraps a tensor taken from stream_next; takes over its release."""
    try:
        ndim = lib.tensorstream_tensor_ndim(tensor)
        shape = tuple(lib.tensorstream_tensor_shape(tensor)[:ndim]) if ndim else ()
        nbytes = lib.tensorstream_tensor_nbytes(tensor)
        on_device = lib.tensorstream_tensor_device(tensor) >= 0
        fields = (lib.tensorstream_tensor_file_index(tensor), lib.tensorstream_tensor_index(tensor),
                  lib.tensorstream_tensor_name(tensor).decode(),
                  lib.tensorstream_tensor_dtype(tensor).decode(), shape, nbytes)
        if nbytes == 0 or on_device:
            # Device bytes live in the destination the caller allocated.
            lib.tensorstream_tensor_release(tensor)
            return Delivered(*fields, None)
        lib.tensorstream_tensor_keep(tensor)
        buffer = (ctypes.c_ubyte * nbytes).from_address(lib.tensorstream_tensor_data(tensor))
    except BaseException:
        lib.tensorstream_tensor_release(tensor)
        raise
    buffer._release_on_collect = _Release(lib.tensorstream_tensor_release, tensor)
    return Delivered(*fields, buffer)


class _Release:
    """Releases a C tensor when collected. Attached to the ctypes buffer that every torch
    tensor or numpy array of it keeps alive; a plain attribute costs a tenth of a
    weakref.finalize, which matters for files of 100,000 tensors."""

    __slots__ = ("_release", "_tensor")

    def __init__(self, release, tensor) -> None:
        self._release = release  # held here: module globals may be gone at shutdown
        self._tensor = tensor

    def __del__(self) -> None:
        self._release(self._tensor)
