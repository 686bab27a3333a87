"""Drop-in replacement for runai-model-streamer 0.17.1's Python API, over tensorstream.

    from runai_model_streamer import SafetensorsStreamer
    with SafetensorsStreamer() as streamer:
        streamer.stream_files(paths)
        for name, tensor in streamer.get_tensors():
            ...

The modules mirror the reference's, so deep imports work too (s3_utils.s3_utils,
safetensors_streamer.safetensors_pytorch, file_streamer.requests_iterator, ...). Importing
needs neither torch, nor a GPU, nor cloud credentials. python/README.md lists where this
package differs from the reference, and why.

Logging, as in the reference: the ``runai_model_streamer`` logger is set to
RUNAI_STREAMER_LOG_LEVEL (default INFO; a name logging does not know is a ValueError at
import), and RUNAI_STREAMER_LOG_TO_STDERR=1 gives it a handler of its own on stderr.

This package and the real runai-model-streamer both install ``runai_model_streamer``: in one
environment the one installed last overwrites the other's files. When the reference's files
are found beside these (this package was installed over it), importing warns and says how to
keep only one.
"""
import logging as _logging
import os as _os
import sys as _sys
import warnings as _warnings

from runai_model_streamer.distributed_streamer.distributed_streamer import DistributedStreamer
from runai_model_streamer.file_streamer.file_streamer import FileStreamer
from runai_model_streamer.file_streamer.requests_iterator import FileChunks
from runai_model_streamer.s3_utils.s3_utils import S3Credentials
from runai_model_streamer.safetensors_streamer.safetensors_streamer import (
    ObjectStorageModel,
    SafetensorsStreamer,
    list_safetensors,
    pull_files,
)

__all__ = [
    "SafetensorsStreamer",
    "ObjectStorageModel",
    "DistributedStreamer",
    "FileStreamer",
    "FileChunks",
    "list_safetensors",
    "pull_files",
]


def _configure_logging() -> None:
    logger = _logging.getLogger(__name__)
    level = _os.environ.get("RUNAI_STREAMER_LOG_LEVEL", "INFO").upper()
    try:
        logger.setLevel(level)
    except ValueError:
        raise ValueError(f"RUNAI_STREAMER_LOG_LEVEL={level!r}: Unknown level (use DEBUG, INFO, "
                         "WARNING, ERROR or CRITICAL)") from None
    if _os.environ.get("RUNAI_STREAMER_LOG_TO_STDERR") == "1" and not any(
            getattr(h, "_runai_stderr_handler", False) for h in logger.handlers):
        handler = _logging.StreamHandler(_sys.stderr)
        handler._runai_stderr_handler = True  # a re-import adds no second handler
        handler.setFormatter(_logging.Formatter("%(asctime)s [%(levelname)s] %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


def _warn_if_installed_over_the_reference() -> None:
    # libstreamer/ holds the reference's native library; nothing of ours is called so.
    if _os.path.isdir(_os.path.join(_os.path.dirname(__file__), "libstreamer")):
        _warnings.warn(
            "runai-model-streamer is installed in the same environment as tensorstream: both "
            "provide the module runai_model_streamer, and tensorstream's drop-in, installed "
            "last, overwrote the reference's files (this import is tensorstream's). Keep one: "
            "`pip uninstall runai-model-streamer` (it also deletes the files the two share, so "
            "follow it with `pip install --force-reinstall --no-deps tensorstream`), or uninstall "
            "tensorstream to use the reference.", RuntimeWarning, stacklevel=2)


_configure_logging()
_warn_if_installed_over_the_reference()
