"""tensorstream's errors as runai-model-streamer 0.17.1 callers catch them.

The reference raises ValueError for anything that goes wrong with a file (missing,
unreadable, corrupt, a read that failed), RunaiStreamerMemoryLimitException for a memory
limit below what a range needs, and RuntimeError from torch for a CUDA device without
CUDA or for a distributed load whose collectives failed. Inside the drop-in, every tensorstream error is re-raised as a class that derives
from its tensorstream class *and* from what the reference raises, so that both
``except ValueError`` and ``except tensorstream.NotFoundError`` catch it. Messages keep
tensorstream's text (the file, the tensor, the cause), which for corrupt files already
carries the reference's wording; errors of access get the reference's "File access
error" in front.
"""
from __future__ import annotations

import contextlib
from typing import Dict, Tuple, Type

import tensorstream

from .file_streamer.requests_iterator import RunaiStreamerMemoryLimitException

_ACCESS = (tensorstream.NotFoundError, tensorstream.PermissionDeniedError, tensorstream.ReadError)
_variants: Dict[Tuple[type, type], type] = {}


def _reference_class(error: tensorstream.TensorStreamError) -> Type[BaseException]:
    if type(error) is tensorstream.DistributedError:
        return RuntimeError  # another rank's failure: torch.distributed's error, in the reference
    if isinstance(error, tensorstream.MemoryLimitError):
        return RunaiStreamerMemoryLimitException
    if isinstance(error, tensorstream.UnavailableError) and "CUDA" in str(error):
        return RuntimeError
    return ValueError


def _variant(ours: type, theirs: type) -> type:
    """``class <ours>(ours, theirs)``, made once per pair."""
    key = (ours, theirs)
    if key not in _variants:
        _variants[key] = type(ours.__name__, (ours, theirs), {"__module__": __name__})
    return _variants[key]


def as_reference_error(error: tensorstream.TensorStreamError) -> tensorstream.TensorStreamError:
    """``error`` as an instance of what the reference raises in its place."""
    theirs = _reference_class(error)
    message = str(error)
    if isinstance(error, _ACCESS):
        message = f"File access error: {message}"
    if isinstance(error, theirs) and message == str(error):
        return error
    converted = _variant(type(error), theirs)(message)
    converted.__traceback__ = error.__traceback__
    return converted


@contextlib.contextmanager
def reference_errors():
    """Re-raises tensorstream errors from the block as the reference's classes."""
    try:
        yield
    except tensorstream.TensorStreamError as error:
        raise as_reference_error(error) from None
