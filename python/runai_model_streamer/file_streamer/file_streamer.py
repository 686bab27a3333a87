"""FileStreamer: byte ranges of files as uint8 tensors, as
``runai_model_streamer.file_streamer.file_streamer`` of runai-model-streamer 0.17.1.

Reading is done by one tensorstream Stream per stream_files call. Differences from the
reference, on the safe side: a call may mix local files and object-store URIs; a new
stream_files replaces the previous one (unread chunks are dropped) rather than raising;
owned=False is a zero-copy mode (local files: views of a copy-on-write mapping), not
reused buffers, so a kept tensor never changes under its holder unless the file does.
"""
from __future__ import annotations

import fnmatch
from typing import Iterator, List, Optional, Tuple, Union

import tensorstream
from tensorstream import S3Credentials

from .._errors import as_reference_error, reference_errors
from ..s3_utils.s3_utils import is_azure_path, is_gs_path, is_s3_path
from .requests_iterator import FileChunks, memory_limit_setting


class RunaiStreamerInvalidInputException(Exception):
    """A request the streamer cannot serve (an unknown device, ...)."""


def host_or_device(device) -> str:
    """The device as a string, every spelling of the host ("cpu:0", torch.device("cpu"),
    None) becoming "cpu". RunaiStreamerInvalidInputException for a device torch does not
    know."""
    if device is None:
        return "cpu"
    import torch

    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise RunaiStreamerInvalidInputException(f"Unusable device {device!r}: {error}") from error
    return "cpu" if resolved.type == "cpu" else str(device)


def homogeneous_paths(paths: List[str]) -> bool:
    """Whether every path is of the same kind (local, s3, gs, az). The reference streams
    only homogeneous lists; tensorstream streams any mix, so this is informational."""
    def kind(path):
        return 1 if is_s3_path(path) else 2 if is_gs_path(path) else 3 if is_azure_path(path) else 0

    return len({kind(p) for p in paths}) <= 1


def check_environment() -> None:
    """Validates RUNAI_STREAMER_CONCURRENCY and RUNAI_STREAMER_CHUNK_BYTESIZE, which the
    reference reads when its streamer starts (``with FileStreamer()``); they are read again
    at each stream_files."""
    with reference_errors():
        for name in ("RUNAI_STREAMER_CONCURRENCY", "RUNAI_STREAMER_CHUNK_BYTESIZE"):
            tensorstream.check_environment(name)


class FileStreamer:
    """Streams byte ranges of files; a context manager (reading stops when it exits)."""

    def __init__(self) -> None:
        self.streamer: Optional[tensorstream.Stream] = None
        self.device_str: Optional[str] = None
        self._ids: List[int] = []
        self._deferred: Optional[BaseException] = None

    def __enter__(self) -> "FileStreamer":
        check_environment()
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        self._close()

    def _close(self) -> None:
        if self.streamer is not None:
            self.streamer.close()
            self.streamer = None

    def list_files(self, prefix: str, is_recursive: bool = True,
                   allow_patterns: Optional[List[str]] = None,
                   ignore_patterns: Optional[List[str]] = None) -> List[Tuple[str, int]]:
        """``(path or URI, size)`` of the files under a local directory or object-store
        prefix (every level with ``is_recursive``), filtered by fnmatch patterns on the
        path below the prefix: one of ``allow_patterns`` (None: any), none of
        ``ignore_patterns``."""
        with reference_errors():
            entries = tensorstream.list(prefix, recursive=is_recursive)
        return [(e.uri, e.size) for e in entries
                if not e.is_directory
                and (allow_patterns is None
                     or any(fnmatch.fnmatch(e.path, p) for p in allow_patterns))
                and not any(fnmatch.fnmatch(e.path, p) for p in ignore_patterns or ())]

    def stream_files(self, file_stream_requests: List[FileChunks],
                     credentials: Optional[S3Credentials] = None,
                     device: Optional[Union[str, "object"]] = "cpu",
                     memory_limit: Optional[int] = None, owned: bool = True) -> None:
        """Starts reading every range of every request. Options come from the environment
        as it is now (RUNAI_STREAMER_CONCURRENCY, RUNAI_STREAMER_CHUNK_BYTESIZE,
        RUNAI_STREAMER_MEMORY_LIMIT, which ``memory_limit`` overrides). A file that cannot
        be read raises from get_chunks, as in the reference."""
        self._close()
        self._deferred = None
        self.device_str = host_or_device(device)
        limit = memory_limit_setting(memory_limit)
        with reference_errors():
            stream = tensorstream.Stream(s3_credentials=credentials, memory_limit=limit,
                                         host_memory="private" if owned else "mapped")
        try:
            self._ids = [request.id for request in file_stream_requests]
            for request in file_stream_requests:
                stream.add_range_list(request.path, request.offsets, request.sizes)
        except tensorstream.TensorStreamError as error:
            # The reference only learns of a missing file or a range beyond its end when
            # the read fails: raise it where its callers expect it.
            stream.close()
            self._deferred = as_reference_error(error)
            return
        except BaseException:
            stream.close()
            raise
        try:
            with reference_errors():
                stream.start()
        except BaseException:
            stream.close()
            raise
        self.streamer = stream

    def get_chunks(self) -> Iterator:
        """Yields ``(id, chunk_index, tensor)`` in completion order: each range once, as a
        uint8 tensor of shape (1, size) on the device."""
        if self._deferred is not None:
            error, self._deferred = self._deferred, None
            raise error
        if self.streamer is None:
            raise ValueError("Streamer not initialized")
        stream, ids, device = self.streamer, self._ids, self.device_str
        chunk_index = {}  # (file, tensor index) -> position in the request
        with reference_errors():
            for file_index, index, tensor in stream.torch_items():
                position = chunk_index.get(file_index)
                if position is None:
                    position = chunk_index[file_index] = [int(info.name)
                                                          for info in stream.tensors(file_index)]
                tensor = tensor.view(1, -1)
                if device != "cpu":
                    tensor = tensor.to(device)
                yield ids[file_index], position[index], tensor
