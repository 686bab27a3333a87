"""tensorstream: stream SafeTensors tensors from storage into memory.

    import tensorstream
    weights = tensorstream.load("model.safetensors")              # dict name -> torch.Tensor
    for name, tensor in tensorstream.stream(files, names=wanted):  # completion order
        ...
    tensorstream.inspect("model.safetensors")                      # header only
    tensorstream.list("s3://bucket/model")                         # files and subdirectories
    tensorstream.pull("s3://bucket/model", "/models/x", include=["*.json"])

Tensors own their memory (it is never reused under them) and stay valid after the
stream ends. Without torch installed, tensors come back as numpy arrays. The
`runai_model_streamer` package in this distribution is a drop-in for
runai-model-streamer's API on top of this one.

Importing needs neither torch, nor a GPU, nor cloud credentials; the native library is
loaded on first use (TENSORSTREAM_LIBRARY overrides its location).
"""
from ._api import inspect, load, resolve_device, stream
from ._capi import check_environment, library_path, version
from ._errors import (
    CancelledError,
    DistributedError,
    FailedPreconditionError,
    FormatError,
    InternalError,
    InvalidArgumentError,
    MemoryLimitError,
    NotFoundError,
    OutOfMemoryError,
    PermissionDeniedError,
    ReadError,
    TensorStreamError,
    UnavailableError,
)
from ._stream import Delivered, S3Credentials, Stream, TensorInfo
from ._transfer import ListEntry, download, list, pull  # noqa: A004 (tensorstream.list)

__all__ = [
    "load", "stream", "inspect", "resolve_device", "version", "library_path",
    "check_environment",
    "list", "download", "pull",
    "Stream", "Delivered", "TensorInfo", "S3Credentials", "ListEntry",
    "TensorStreamError", "InvalidArgumentError", "NotFoundError", "PermissionDeniedError",
    "FormatError", "ReadError", "MemoryLimitError", "OutOfMemoryError", "CancelledError",
    "FailedPreconditionError", "UnavailableError", "InternalError", "DistributedError",
]
