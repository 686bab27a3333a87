"""FileChunks and the memory settings of FileStreamer, as
``runai_model_streamer.file_streamer.requests_iterator`` of runai-model-streamer 0.17.1.

The reference packs requests into a ring of reused buffers here; tensorstream's pipeline
plans and buffers the reads itself, so what remains is the request description and the
memory-limit setting with the reference's parsing and exceptions.
"""
from __future__ import annotations

import enum
import os
from typing import List, Optional

RUNAI_STREAMER_MEMORY_LIMIT_ENV_VAR_NAME = "RUNAI_STREAMER_MEMORY_LIMIT"
# The reference's default (40 GB). tensorstream's own default is -1 (unlimited), under which
# its readers still stay a bounded window ahead of the consumer.
DEFAULT_MEMORY_LIMIT_STRING = "-1"


class RunaiStreamerMemoryLimitException(Exception):
    """The memory limit is invalid, or below the largest range to read."""


class MemoryCapMode(enum.Enum):
    unlimited = 1
    limited = 2
    largest_chunk = 3


class FileChunks:
    """One file plus the byte ranges to read from it: range i is
    ``[offsets[i], offsets[i] + sizes[i])``. Ranges need not be contiguous nor ordered.

    ``id`` identifies the file in what get_chunks() yields; it must be unique within one
    stream_files call. ``path`` is a local path or an object-store URI."""

    def __init__(self, id: int, path: str, offsets: List[int], sizes: List[int]) -> None:
        if len(offsets) != len(sizes):
            raise ValueError(f"offsets ({len(offsets)}) and sizes ({len(sizes)}) must be parallel")
        self.id = id
        self.path = path
        self.offsets = offsets
        self.sizes = sizes

    @staticmethod
    def contiguous(id: int, path: str, offset: int, sizes: List[int]) -> "FileChunks":
        """Ranges laid out back to back in the file, starting at ``offset``."""
        offsets = []
        for size in sizes:
            offsets.append(offset)
            offset += size
        return FileChunks(id, path, offsets, sizes)

    def total_size(self) -> int:
        return sum(self.sizes)

    def max_chunk_size(self) -> int:
        return max(self.sizes)

    def __repr__(self) -> str:
        return (f"FileChunks(id='{self.id}', path='{self.path}', "
                f"num_ranges={len(self.sizes)}, total_size={self.total_size()})")


def memory_limit_setting(memory_limit: Optional[int] = None) -> int:
    """``memory_limit``, or RUNAI_STREAMER_MEMORY_LIMIT read now (as the reference reads
    it, with int()): -1 unlimited, 0 the largest range, N bytes. ValueError naming the
    variable when it is not an integer; RunaiStreamerMemoryLimitException below -1."""
    if memory_limit is None:
        text = os.environ.get(RUNAI_STREAMER_MEMORY_LIMIT_ENV_VAR_NAME, DEFAULT_MEMORY_LIMIT_STRING)
        try:
            memory_limit = int(text)
        except ValueError:
            raise ValueError(f"{RUNAI_STREAMER_MEMORY_LIMIT_ENV_VAR_NAME}={text!r}: invalid literal "
                             "for int(); use -1 (unlimited), 0 (the largest tensor) or bytes") from None
    if memory_limit < -1:
        raise RunaiStreamerMemoryLimitException(
            f"Memory limit supplied: {memory_limit} cannot be smaller than -1 "
            "(-1 unlimited, 0 the largest tensor, or bytes)")
    return memory_limit


def memory_mode(memory_limit: int) -> MemoryCapMode:
    if memory_limit == -1:
        return MemoryCapMode.unlimited
    if memory_limit == 0:
        return MemoryCapMode.largest_chunk
    return MemoryCapMode.limited
