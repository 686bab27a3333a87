"""ctypes declarations of the C API in include/tensorstream/tensorstream.h.

The library is found, in order, at ``$TENSORSTREAM_LIBRARY`` (a path, for development
against a build tree) and at ``_lib/libtensorstream.so`` inside this package (where the
wheel puts it). It is loaded on first use, so importing the package never fails for lack
of it; :func:`lib` raises ImportError with both places named when it cannot be loaded.

Calls go through ctypes.CDLL, which releases the GIL for the duration of each call: a
consumer blocked in ``tensorstream_stream_next`` does not stall other Python threads.
"""
from __future__ import annotations

import ctypes
import os
import threading
from ctypes import POINTER, c_char_p, c_int, c_int64, c_size_t, c_uint64, c_void_p
from pathlib import Path

from ._errors import error_for_status

OK = 0
END_OF_STREAM = 1

LIBRARY_ENV = "TENSORSTREAM_LIBRARY"
_PACKAGED = Path(__file__).resolve().parent / "_lib" / "libtensorstream.so"


class Options(ctypes.Structure):
    """Opaque ``tensorstream_options``."""


class Stream(ctypes.Structure):
    """Opaque ``tensorstream_stream``."""


class Tensor(ctypes.Structure):
    """Opaque ``tensorstream_tensor``."""


OptionsP = POINTER(Options)
StreamP = POINTER(Stream)
TensorP = POINTER(Tensor)

class Delivery(ctypes.Structure):
    """``tensorstream_delivery``: eight 8-byte fields (read as integers in _tensors)."""

    _fields_ = [("tensor", TensorP), ("file_index", c_uint64), ("tensor_index", c_uint64),
                ("data", c_void_p), ("nbytes", c_uint64), ("block", c_void_p),
                ("block_bytes", c_uint64), ("device", c_int64)]


class Listing(ctypes.Structure):
    """Opaque ``tensorstream_listing``."""


ListingP = POINTER(Listing)
# tensorstream_progress_fn: (bytes written so far, user data), called on the calling thread.
ProgressFn = ctypes.CFUNCTYPE(None, c_uint64, c_void_p)

# name: (restype, argtypes): the functions the binding calls. A restype of c_int means a
# status to check.
_SIGNATURES = {
    "tensorstream_version": (c_char_p, []),
    "tensorstream_last_error": (c_char_p, []),
    "tensorstream_options_create": (c_int, [POINTER(OptionsP)]),
    "tensorstream_check_environment": (c_int, [c_char_p]),
    "tensorstream_options_destroy": (None, [OptionsP]),
    "tensorstream_options_set": (c_int, [OptionsP, c_char_p, c_char_p]),
    "tensorstream_options_set_device": (c_int, [OptionsP, c_char_p]),
    "tensorstream_stream_create": (c_int, [OptionsP, POINTER(StreamP)]),
    "tensorstream_stream_destroy": (None, [StreamP]),
    "tensorstream_stream_add_file": (c_int, [StreamP, c_char_p, POINTER(c_size_t)]),
    "tensorstream_stream_add_ranges": (
        c_int, [StreamP, c_char_p, c_uint64, POINTER(c_uint64), c_size_t, POINTER(c_size_t)]),
    "tensorstream_stream_add_range_list": (
        c_int, [StreamP, c_char_p, POINTER(c_uint64), POINTER(c_uint64), c_size_t,
                POINTER(c_size_t)]),
    "tensorstream_stream_select": (c_int, [StreamP, c_size_t, POINTER(c_char_p), c_size_t]),
    "tensorstream_stream_set_destination": (c_int, [StreamP, c_size_t, c_size_t, c_void_p]),
    "tensorstream_stream_file_count": (c_int, [StreamP, POINTER(c_size_t)]),
    "tensorstream_stream_tensors_json": (c_int, [StreamP, c_size_t, POINTER(c_char_p)]),
    "tensorstream_stream_metadata_json": (c_int, [StreamP, c_size_t, POINTER(c_char_p)]),
    "tensorstream_stream_start": (c_int, [StreamP]),
    "tensorstream_stream_next_batch": (
        c_int, [StreamP, POINTER(Delivery), c_size_t, c_int, c_int, POINTER(c_size_t)]),
    "tensorstream_deliveries_release": (None, [c_void_p, c_size_t]),
    # Takes the handle as an integer, as _tensors reads it from a delivery record.
    "tensorstream_tensor_keep": (None, [c_void_p]),
    "tensorstream_stream_cancel": (c_int, [StreamP]),
    "tensorstream_stream_stats": (c_int, [StreamP, POINTER(c_uint64), POINTER(c_uint64)]),
    # Listing and downloading (used by _transfer.py).
    "tensorstream_list": (c_int, [OptionsP, c_char_p, c_int, POINTER(ListingP)]),
    "tensorstream_listing_destroy": (None, [ListingP]),
    "tensorstream_listing_count": (c_size_t, [ListingP]),
    "tensorstream_listing_uri": (c_char_p, [ListingP, c_size_t]),
    "tensorstream_listing_relative": (c_char_p, [ListingP, c_size_t]),
    "tensorstream_listing_size": (c_uint64, [ListingP, c_size_t]),
    "tensorstream_listing_is_directory": (c_int, [ListingP, c_size_t]),
    "tensorstream_check_relative_path": (c_int, [c_char_p]),
    "tensorstream_download": (
        c_int, [OptionsP, c_char_p, c_char_p, c_char_p, ProgressFn, c_void_p, POINTER(c_uint64)]),
}

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None


def library_path() -> Path:
    """The path the library is (or would be) loaded from."""
    override = os.environ.get(LIBRARY_ENV)
    return Path(override) if override else _PACKAGED


def lib() -> ctypes.CDLL:
    """The loaded library with every signature declared (loaded once per process)."""
    global _lib
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is None:
            path = library_path()
            try:
                loaded = ctypes.CDLL(str(path))
            except OSError as e:
                raise ImportError(
                    f"tensorstream: cannot load the native library {path} ({e}); install the "
                    f"package with pip, or set {LIBRARY_ENV} to a built libtensorstream.so"
                ) from e
            for name, (restype, argtypes) in _SIGNATURES.items():
                function = getattr(loaded, name)
                function.restype = restype
                function.argtypes = argtypes
            _lib = loaded
    return _lib


def check(status: int) -> int:
    """Returns a non-negative status; raises the matching TensorStreamError otherwise.

    REQUIRES: called on the thread that made the failing call, before any other call
    (the C API keeps the last error per thread).
    """
    if status >= 0:
        return status
    message = lib().tensorstream_last_error().decode("utf-8", "replace")
    raise error_for_status(status, message)


def check_environment(name: str) -> None:
    """Validates one environment variable of the options as the library reads it
    (InvalidArgumentError naming it)."""
    check(lib().tensorstream_check_environment(name.encode()))


def version() -> str:
    """The version of the loaded native library."""
    return lib().tensorstream_version().decode()
