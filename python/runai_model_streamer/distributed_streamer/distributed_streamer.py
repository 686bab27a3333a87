"""DistributedStreamer, as ``runai_model_streamer.distributed_streamer.distributed_streamer``
of runai-model-streamer 0.17.1: a FileStreamer that decides, from the torch.distributed
group and RUNAI_STREAMER_DIST, whether the ranks may share the reads
(``tensorstream._distributed``).

Sharing is not implemented yet: when the decision is yes, every rank still reads all of
its ranges (correct, but each byte leaves storage once per rank), and an INFO line says so.
"""
from __future__ import annotations

import logging
from typing import Iterator, List, Optional, Tuple

from tensorstream import S3Credentials
from tensorstream._distributed import decide

from ..file_streamer.file_streamer import FileStreamer, host_or_device
from ..file_streamer.requests_iterator import FileChunks

logger = logging.getLogger(__name__)


class DistributedStreamer:
    def __init__(self) -> None:
        self.file_streamer = FileStreamer()
        self.is_distributed = False

    def __enter__(self) -> "DistributedStreamer":
        self.file_streamer.__enter__()
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        self.file_streamer.__exit__(exc_type, exc_value, traceback)

    def get_group_size(self) -> int:
        """Ranks of the initialised torch.distributed group (1 without one)."""
        try:
            import torch.distributed as dist
        except ImportError:
            return 1
        return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1

    def get_cuda_free_memory(self) -> int:
        import torch

        return torch.cuda.mem_get_info()[0] if torch.cuda.is_available() else 0

    def set_is_distributed(self, is_distributed: bool, device: str) -> None:
        """Decides whether this load is shared by the ranks (see tensorstream._distributed);
        ValueError for an invalid RUNAI_STREAMER_DIST."""
        decision = decide(is_distributed, host_or_device(device))
        self.is_distributed = decision.distributed
        if is_distributed and not decision.distributed:
            logger.info("[RunAI Streamer][Distributed] %s - fallback to non distributed streaming",
                        decision.reason)
        elif decision.distributed:
            logger.info("[RunAI Streamer][Distributed] %s: sharing the reads across ranks is "
                        "not implemented yet - every rank reads all of its files",
                        decision.reason)

    def stream_files(self, file_stream_requests: List[FileChunks],
                     credentials: Optional[S3Credentials], device: str, is_distributed: bool,
                     owned: bool = True, discover_ranks: bool = True) -> None:
        self.set_is_distributed(is_distributed, device)
        self.file_streamer.stream_files(file_stream_requests, credentials, device, owned=owned)

    def ring_info(self) -> Optional[Tuple[int, int, int]]:
        """The reference's (rank, buffers, buffer bytes) of its CPU ring; tensorstream
        builds no ring (its pipeline buffers reads itself), so always None."""
        return None

    def get_chunks(self) -> Iterator:
        return self.file_streamer.get_chunks()
