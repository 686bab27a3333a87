"""Exceptions raised by tensorstream, one per status code of the C API.

Every exception derives from :class:`TensorStreamError` and carries the library's message
(which names the file or URL, the tensor where there is one, and the cause), the numeric
``status`` and its ``status_name``. Where a built-in exception means the same thing the
class derives from it too, so ``except FileNotFoundError`` catches a missing file.
"""
from __future__ import annotations


class TensorStreamError(Exception):
    """Base class of every tensorstream error.

    Attributes:
        status: the negative status code of the C API (``tensorstream_status``).
        status_name: its constant name, e.g. ``"FORMAT_ERROR"``.
    """

    status = -11
    status_name = "INTERNAL"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidArgumentError(TensorStreamError, ValueError):
    """A bad parameter: option out of range, unparsable environment variable, bad index."""

    status, status_name = -1, "INVALID_ARGUMENT"


class NotFoundError(TensorStreamError, FileNotFoundError):
    """A file, object or tensor name does not exist."""

    status, status_name = -2, "NOT_FOUND"


class PermissionDeniedError(TensorStreamError, PermissionError):
    """Access denied by the operating system or the server."""

    status, status_name = -3, "PERMISSION_DENIED"


class FormatError(TensorStreamError, ValueError):
    """The file is not a valid SafeTensors file (the message says where and why)."""

    status, status_name = -4, "FORMAT_ERROR"


class ReadError(TensorStreamError, OSError):
    """A read failed: truncated file, connection lost, server error beyond the retries."""

    status, status_name = -5, "IO_ERROR"


class MemoryLimitError(TensorStreamError):
    """The memory limit is below what one tensor needs (raised before any read)."""

    status, status_name = -6, "MEMORY_LIMIT"


class OutOfMemoryError(TensorStreamError, MemoryError):
    """An allocation failed."""

    status, status_name = -7, "OUT_OF_MEMORY"


class CancelledError(TensorStreamError):
    """The stream was cancelled."""

    status, status_name = -8, "CANCELLED"


class FailedPreconditionError(TensorStreamError, RuntimeError):
    """A call out of order, e.g. adding a file after the stream started."""

    status, status_name = -9, "FAILED_PRECONDITION"


class UnavailableError(TensorStreamError):
    """A device or service is unavailable (no CUDA, server 5xx, ...)."""

    status, status_name = -10, "UNAVAILABLE"


class DistributedError(TensorStreamError, RuntimeError):
    """A load shared by the ranks of a torch.distributed group failed: a rank could not
    read its share (the message names the rank, its host and the cause), or a rank did
    not take part in time. Every rank of the group raises it. Not a C API status."""


class InternalError(TensorStreamError):
    """A bug in tensorstream: please report it with the message."""

    status, status_name = -11, "INTERNAL"


_BY_STATUS = {
    cls.status: cls
    for cls in (
        InvalidArgumentError,
        NotFoundError,
        PermissionDeniedError,
        FormatError,
        ReadError,
        MemoryLimitError,
        OutOfMemoryError,
        CancelledError,
        FailedPreconditionError,
        UnavailableError,
        InternalError,
    )
}


def error_for_status(status: int, message: str) -> TensorStreamError:
    """The exception for a negative C API status (InternalError for an unknown code)."""
    cls = _BY_STATUS.get(status, InternalError)
    if cls is InternalError and status != InternalError.status:
        message = f"unknown status {status}: {message}"
    return cls(message)
