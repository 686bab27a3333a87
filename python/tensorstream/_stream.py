"""Stream: one pass of the C API's stream, driven from Python.

Ownership: tensors handed out wrap the library's own memory (a read group's buffer, or the
file's mapping) without a copy. Tensors are taken in batches; each is marked kept
(``tensorstream_tensor_keep``: its bytes stop counting against the memory limit, so
reading goes on) only when it is handed to the caller, so the limit still bounds what is
read ahead of the caller. The C handles of the tensors that share one block of memory are
released when the last Python view of that block dies (see ``_tensors``). The bytes are therefore never reused while
any view of them exists, they stay valid after the stream is closed, and they are freed
when the last view dies.
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import threading
import weakref
from ctypes import byref, c_size_t
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping, NamedTuple, Optional, Sequence

from . import _capi, _tensors
from ._errors import CancelledError, FailedPreconditionError

# Tensors taken per call of tensorstream_stream_next_batch, and how long one call waits
# before Python gets control back (so that Ctrl-C is seen within that time).
_BATCH_CAPACITY = 1024
_WAIT_MS = 100


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
    """A completed tensor from iterating a :class:`Stream`: where it comes from, and its
    value (a torch tensor, or a numpy array with ``Stream(framework="np")``)."""

    file_index: int
    index: int
    name: str
    nbytes: int
    value: object


def apply_options(options, *, concurrency=None, chunk_bytes=None, memory_limit=None,
                  direct_io=None, host_memory=None, s3_credentials=None, storage=None,
                  device=None, device_memory_limit=None) -> None:
    """Sets the keyword arguments that are not None on a ``tensorstream_options`` handle.
    ``storage``: backend settings by key ("gcs.credential_file": path, ...; a None value
    removes one), applied after ``s3_credentials``."""
    settings = {"concurrency": concurrency, "chunk_bytes": chunk_bytes,
                "memory_limit": memory_limit, "host_memory": host_memory,
                "device_memory_limit": device_memory_limit}
    if direct_io is not None:
        settings["direct_io"] = int(bool(direct_io))
    if s3_credentials is not None:
        settings.update({"s3.access_key_id": s3_credentials.access_key_id,
                         "s3.secret_access_key": s3_credentials.secret_access_key,
                         "s3.session_token": s3_credentials.session_token,
                         "s3.region": s3_credentials.region_name,
                         "s3.endpoint": s3_credentials.endpoint})
    settings.update(storage or {})
    lib = _capi.lib()
    for key, value in settings.items():
        if value is not None or "." in key:  # a backend setting set to None is removed
            _capi.check(lib.tensorstream_options_set(
                options, key.encode(), None if value is None else str(value).encode()))
    if device is not None:
        _capi.check(lib.tensorstream_options_set_device(options, str(device).encode()))


class Stream:
    """One streaming pass: add files or ranges, optionally select, start, take tensors.

    Options are read from the environment (RUNAI_STREAMER_CONCURRENCY,
    RUNAI_STREAMER_CHUNK_BYTESIZE, RUNAI_STREAMER_MEMORY_LIMIT, TENSORSTREAM_DIRECT_IO,
    TENSORSTREAM_MMAP) when the Stream is created; keyword arguments that are not None
    override them. ``host_memory``: "mapped" (without a memory limit, local tensors are
    views of a copy-on-write mapping of the file: no copy, but a file rewritten or
    truncated on disk afterwards changes them or makes touching them fault, as with
    safetensors) or "private" (bytes the library owns, immune to the file).
    With ``device="cuda:N"`` the library streams through pinned staging straight into
    device memory: either give tensors a destination with ``set_destination`` before
    ``start`` (e.g. a torch tensor's ``data_ptr()``), or let the library allocate device
    memory for them as their bytes are about to arrive, at most ``device_memory_limit``
    bytes ahead of the consumer (-1, the default: max(1 GiB, the largest tensor)), and
    take them with ``device_items``.
    A Stream is driven by one thread; ``close()`` may come from any thread (a consumer
    waiting for tensors then raises CancelledError within a fraction of a second).
    ``close()`` (or leaving a ``with`` block) stops the reader threads; tensors already
    delivered stay valid. A stream belongs to the process that created it: in a child
    made by fork() its calls raise FailedPreconditionError.
    """

    def __init__(self, *, concurrency: Optional[int] = None, chunk_bytes: Optional[int] = None,
                 memory_limit: Optional[int] = None, direct_io: Optional[bool] = None,
                 host_memory: Optional[str] = None,
                 s3_credentials: Optional[S3Credentials] = None,
                 storage: Optional[Mapping[str, Optional[str]]] = None,
                 device: Optional[str] = None,
                 device_memory_limit: Optional[int] = None) -> None:
        lib = _capi.lib()
        options = _capi.OptionsP()
        _capi.check(lib.tensorstream_options_create(byref(options)))
        try:
            apply_options(options, concurrency=concurrency, chunk_bytes=chunk_bytes,
                          memory_limit=memory_limit, direct_io=direct_io,
                          host_memory=host_memory, s3_credentials=s3_credentials,
                          storage=storage, device=device,
                          device_memory_limit=device_memory_limit)
            handle = _capi.StreamP()
            _capi.check(lib.tensorstream_stream_create(options, byref(handle)))
        finally:
            lib.tensorstream_options_destroy(options)
        self._handle = handle
        self._infos: dict = {}
        self._data_offsets: dict = {}
        # Every C call on the handle holds _calls, so that close() from another thread
        # destroys the stream only between calls; _closing (under _state) makes the
        # consumer stop instead of starting another call.
        self._calls = threading.Lock()
        self._state = threading.Lock()
        self._closing = False
        self._close = weakref.finalize(self, lib.tensorstream_stream_destroy, handle)

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Cancels reading and frees the stream (idempotent; any thread). A consumer waiting
        in another thread wakes up and raises CancelledError; close() waits for it to leave
        the library first."""
        with self._state:
            first, self._closing = not self._closing, True
        if first and self._close.alive:
            # Only the first close() gets here, and only close() destroys the handle, so
            # it is live; cancel is thread-safe in the C API.
            _capi.lib().tensorstream_stream_cancel(self._handle)
        with self._calls:
            self._close()

    @contextlib.contextmanager
    def _calling(self):
        """The live handle, held against close() for the duration of one C call."""
        with self._calls:
            if self._closing or not self._close.alive:
                raise FailedPreconditionError("the stream is closed")
            yield self._handle

    def add_file(self, uri) -> int:
        """Adds a SafeTensors file (path or URI), parsing its header; returns its index."""
        index = c_size_t()
        with self._calling() as handle:
            _capi.check(_capi.lib().tensorstream_stream_add_file(
                handle, encode_path(uri), byref(index)))
        return index.value

    def add_ranges(self, uri, offset: int, sizes: Sequence[int]) -> int:
        """Adds consecutive raw byte ranges starting at ``offset``; returns the file index.
        They are delivered as U8 tensors named "0", "1", ... by position."""
        array = (ctypes.c_uint64 * len(sizes))(*sizes)
        index = c_size_t()
        with self._calling() as handle:
            _capi.check(_capi.lib().tensorstream_stream_add_ranges(
                handle, encode_path(uri), int(offset), array, len(sizes), byref(index)))
        return index.value

    def add_range_list(self, uri, offsets: Sequence[int], sizes: Sequence[int]) -> int:
        """Adds byte ranges ``[offsets[i], offsets[i] + sizes[i])`` (any order, overlaps
        allowed); returns the file index. Range i is delivered as a U8 tensor named "i";
        tensor indices follow the ranges sorted by offset."""
        if len(offsets) != len(sizes):
            raise ValueError(f"{len(offsets)} offsets for {len(sizes)} sizes")
        offset_array = (ctypes.c_uint64 * len(offsets))(*offsets)
        size_array = (ctypes.c_uint64 * len(sizes))(*sizes)
        index = c_size_t()
        with self._calling() as handle:
            _capi.check(_capi.lib().tensorstream_stream_add_range_list(
                handle, encode_path(uri), offset_array, size_array, len(sizes), byref(index)))
        return index.value

    def select(self, file_index: int, names: Iterable[str]) -> None:
        """Reads only the named tensors of a file (NotFoundError for an unknown name)."""
        encoded = [n.encode() for n in names]
        array = (ctypes.c_char_p * len(encoded))(*encoded)
        with self._calling() as handle:
            _capi.check(_capi.lib().tensorstream_stream_select(
                handle, file_index, array, len(encoded)))

    def set_destination(self, file_index: int, tensor_index: int, device_ptr: int) -> None:
        """Device streams: the tensor's bytes go to ``device_ptr`` (caller-owned device
        memory of at least the tensor's size, e.g. a torch tensor's ``data_ptr()``)."""
        with self._calling() as handle:
            _capi.check(_capi.lib().tensorstream_stream_set_destination(
                handle, file_index, tensor_index, ctypes.c_void_p(device_ptr)))

    def file_count(self) -> int:
        count = c_size_t()
        with self._calling() as handle:
            _capi.check(_capi.lib().tensorstream_stream_file_count(handle, byref(count)))
        return count.value

    def tensors(self, file_index: int) -> list:
        """The file's tensors as TensorInfo, sorted by offset (the C API's tensor index).
        One call for the whole file; the list is cached (do not modify it)."""
        infos = self._infos.get(file_index)
        if infos is None:
            text = ctypes.c_char_p()
            with self._calling() as handle:
                _capi.check(_capi.lib().tensorstream_stream_tensors_json(
                    handle, file_index, byref(text)))
            with _bulk_allocation():
                columns = json.loads(text.value)
                infos = list(map(TensorInfo, columns["name"], columns["dtype"],
                                 map(tuple, columns["shape"]), columns["offset"],
                                 columns["nbytes"]))
            self._infos[file_index] = infos
            self._data_offsets[file_index] = columns["data_offset"]
        return infos

    def data_offset(self, file_index: int) -> int:
        """Where a SafeTensors file's data section starts (8 + its header's length)."""
        self.tensors(file_index)
        return self._data_offsets[file_index]

    def metadata(self, file_index: int) -> dict:
        """The header's ``__metadata__`` object ({} when absent)."""
        text = ctypes.c_char_p()
        with self._calling() as handle:
            _capi.check(_capi.lib().tensorstream_stream_metadata_json(
                handle, file_index, byref(text)))
            return json.loads(text.value.decode())

    def start(self) -> None:
        """Starts reading (MemoryLimitError, before any read, if a tensor exceeds the limit)."""
        with self._calling() as handle:
            _capi.check(_capi.lib().tensorstream_stream_start(handle))

    def cancel(self) -> None:
        """Stops reading; the iteration then raises CancelledError. Any thread may call it."""
        with self._state:  # not _calls: the consumer may be waiting inside a call
            if not self._closing and self._close.alive:
                _capi.check(_capi.lib().tensorstream_stream_cancel(self._handle))

    def batches(self) -> Iterator[_tensors.Batch]:
        """Yields the completed tensors in batches (completion order, each once), as raw
        deliveries whose handles the caller owns (see ``_tensors``). Waits in short steps
        so that Ctrl-C stops it; raises the stream's first error."""
        lib = _capi.lib()
        count = c_size_t()
        while True:
            array = (_capi.Delivery * _BATCH_CAPACITY)()
            with self._calls:
                if self._closing or not self._close.alive:
                    raise CancelledError("the stream was closed while it was being read")
                status = _capi.check(lib.tensorstream_stream_next_batch(
                    self._handle, array, _BATCH_CAPACITY, 0, _WAIT_MS, byref(count)))
            if status == _capi.END_OF_STREAM:
                return
            if count.value:
                yield _tensors.Batch(array, count.value)

    def torch_items(self) -> Iterator[tuple]:
        """``(file_index, tensor_index, torch.Tensor)`` for every completed tensor, exact
        dtype and shape, its address aligned to its element size (copied when the file
        placed it otherwise)."""
        return _tensors.torch_items(self.batches(), self.tensors)

    def device_items(self) -> Iterator[tuple]:
        """Device streams: ``(file_index, tensor_index, torch.Tensor)`` for every completed
        tensor, on the stream's device, over the device memory the library allocated for
        it (no copy; freed when the tensor is). Tensors given a destination are taken with
        ``batches`` instead. The library allocates at most ``device_memory_limit`` bytes
        ahead of what was taken, and a batch takes what has completed, so the tensors not
        yet handed out stay below twice that limit."""
        return _tensors.device_items(self.batches(), self.tensors)

    def numpy_items(self) -> Iterator[tuple]:
        """As torch_items, with numpy arrays (dtype rules in tensorstream._dtypes)."""
        return _tensors.numpy_items(self.batches(), self.tensors)

    def __iter__(self) -> Iterator[Delivered]:
        for file_index, index, tensor in self.torch_items():
            info = self.tensors(file_index)[index]
            yield Delivered(file_index, index, info.name, info.nbytes, tensor)

    def stats(self) -> tuple:
        """(bytes read so far, peak bytes reserved against the memory limit)."""
        read, peak = ctypes.c_uint64(), ctypes.c_uint64()
        with self._calling() as handle:
            _capi.check(_capi.lib().tensorstream_stream_stats(handle, byref(read), byref(peak)))
        return read.value, peak.value


@contextlib.contextmanager
def _bulk_allocation():
    """Pauses the cyclic garbage collector while tens of thousands of small objects are
    made at once: none of them can be garbage yet, and with torch loaded every collection
    that their count would trigger scans hundreds of thousands of objects (it doubled the
    cost per tensor)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def encode_path(uri) -> bytes:
    """A path or URI as the C API takes it; a NUL inside would silently cut it short."""
    encoded = os.fsencode(uri)
    if b"\0" in encoded:
        raise ValueError(f"path {uri!r} contains a NUL character")
    return encoded
