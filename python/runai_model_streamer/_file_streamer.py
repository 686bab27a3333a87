"""FileChunks, FileStreamer and DistributedStreamer: raw byte ranges of any file."""
from __future__ import annotations

import logging
from typing import Iterator, List, Optional

from tensorstream import FailedPreconditionError, S3Credentials, Stream, resolve_device

logger = logging.getLogger("runai_model_streamer")


class FileChunks:
    """Consecutive byte ranges of one file: ``chunks[i]`` bytes each, starting at ``offset``.

    ``id`` identifies the file in what get_chunks() yields; it must be unique within one
    stream_files call.
    """

    def __init__(self, id: int, path: str, offset: int, chunks: List[int]) -> None:
        self.id = id
        self.path = path
        self.offset = offset
        self.chunks = chunks

    def total_size(self) -> int:
        return sum(self.chunks)

    def max_chunk_size(self) -> int:
        return max(self.chunks, default=0)

    def __repr__(self) -> str:
        return (f"FileChunks(id={self.id!r}, path={self.path!r}, offset={self.offset}, "
                f"num_chunks={len(self.chunks)}, total_size={self.total_size()})")


class _StreamOwner:
    """A context manager owning at most one tensorstream Stream (``self._stream``), closed
    on exit or when replaced by the next stream_files call."""

    _stream: Optional[Stream] = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        self._close()

    def _close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


class FileStreamer(_StreamOwner):
    """Streams byte ranges of files; a context manager (reading stops when it exits).

    Each stream_files call replaces the previous one. Memory options come from the
    environment (RUNAI_STREAMER_CONCURRENCY, RUNAI_STREAMER_CHUNK_BYTESIZE,
    RUNAI_STREAMER_MEMORY_LIMIT) as it is when stream_files is called.
    """

    def __init__(self) -> None:
        self._stream: Optional[Stream] = None
        self._ids: List[int] = []
        self._device = "cpu"

    def stream_files(self, file_stream_requests: List[FileChunks],
                     credentials: Optional[S3Credentials] = None,
                     device: Optional[str] = "cpu") -> None:
        """Starts reading the ranges of every request. The device is checked first
        ("cpu", "cuda", "cuda:N"; CUDA unavailable raises before any read)."""
        self._close()
        self._device = resolve_device(device)
        stream = Stream(s3_credentials=credentials)
        try:
            self._ids = [request.id for request in file_stream_requests]
            for request in file_stream_requests:
                stream.add_ranges(request.path, request.offset, request.chunks)
            stream.start()
        except BaseException:
            stream.close()
            raise
        self._stream = stream

    def get_chunks(self) -> Iterator:
        """Yields ``(id, chunk_index, tensor)`` in completion order: each range once, as a
        uint8 tensor of shape (1, size) on the device. The tensors own their bytes."""
        if self._stream is None:
            raise FailedPreconditionError("get_chunks() before stream_files()")
        for item in self._stream:
            tensor = item.to_torch().view(1, -1)
            if self._device != "cpu":
                tensor = tensor.to(self._device)
            yield self._ids[item.file_index], int(item.name), tensor


class DistributedStreamer(FileStreamer):
    """FileStreamer with the ``is_distributed`` flag of runai-model-streamer.

    Splitting the reads across the ranks of a torch.distributed group is not implemented
    yet: every rank reads every byte itself and gets every chunk, which is correct but
    does not save storage bandwidth. ``process_group`` is accepted for compatibility.
    """

    def __init__(self, process_group=None) -> None:
        super().__init__()
        self.process_group = process_group
        self.is_distributed = False

    def stream_files(self, file_stream_requests: List[FileChunks],
                     credentials: Optional[S3Credentials] = None,
                     device: Optional[str] = "cpu", is_distributed: bool = False) -> None:
        if is_distributed:
            logger.info("[tensorstream] distributed streaming requested: %s; every rank "
                        "reads all of its files", _why_not_distributed())
        super().stream_files(file_stream_requests, credentials, device)


def _why_not_distributed() -> str:
    try:
        import torch.distributed as dist
    except ImportError:
        return "torch is not installed"
    if not dist.is_available() or not dist.is_initialized():
        return "torch.distributed is not initialised"
    if dist.get_world_size() == 1:
        return "the process group has one rank"
    return "splitting reads across ranks is not implemented yet"
