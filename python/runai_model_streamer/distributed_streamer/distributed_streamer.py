"""DistributedStreamer, as ``runai_model_streamer.distributed_streamer.distributed_streamer``
of runai-model-streamer 0.17.1: a FileStreamer whose ranges, when the ranks of a
torch.distributed group share the load, are read once per host (or once for the whole job)
and broadcast to every rank. The decision and the protocol are ``tensorstream._distributed``.
"""
from __future__ import annotations

import logging
from typing import Iterator, List, Optional, Tuple

from tensorstream import S3Credentials
from tensorstream._distributed import LoadRange, SharedLoad, decide, layout_fingerprint

# file_streamer before _errors, which imports file_streamer's requests_iterator.
from ..file_streamer.file_streamer import FileStreamer, host_or_device
from ..file_streamer.requests_iterator import FileChunks, memory_limit_setting
from .._errors import reference_errors  # noqa: I001

logger = logging.getLogger(__name__)


class DistributedStreamer:
    def __init__(self) -> None:
        self.file_streamer = FileStreamer()
        self.is_distributed = False
        self._shared: Optional[SharedLoad] = None
        self._keys: List[Tuple[int, int]] = []  # range index -> (request id, chunk index)

    def __enter__(self) -> "DistributedStreamer":
        self.file_streamer.__enter__()
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        try:
            self.close_shared()
        finally:
            self.file_streamer.__exit__(exc_type, exc_value, traceback)

    def close_shared(self) -> None:
        """Ends the shared load in progress, if any (its groups are released)."""
        if self._shared is not None:
            self._shared.close()
            self._shared = None

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
        """Decides whether loads on ``device`` are shared by the ranks (see
        tensorstream._distributed.decide); ValueError for an invalid RUNAI_STREAMER_DIST."""
        decision = decide(is_distributed, host_or_device(device))
        self.is_distributed = decision.distributed
        if is_distributed and not decision.distributed:
            logger.info("[RunAI Streamer][Distributed] %s - fallback to non distributed streaming",
                        decision.reason)

    def stream_files(self, file_stream_requests: List[FileChunks],
                     credentials: Optional[S3Credentials], device: str, is_distributed: bool,
                     owned: bool = True, discover_ranks: bool = True) -> None:
        """Starts reading every range of every request; shared by the ranks when
        ``is_distributed`` and the group allows it (then every rank of the world must call
        this with the same requests, and consume every chunk)."""
        self.close_shared()
        device = host_or_device(device)
        self.set_is_distributed(is_distributed, device)
        if not self.is_distributed:
            self.file_streamer.stream_files(file_stream_requests, credentials, device,
                                            owned=owned)
            return
        ranges, self._keys = [], []
        for request in file_stream_requests:
            for index, (offset, size) in enumerate(zip(request.offsets, request.sizes)):
                ranges.append(LoadRange(request.path, offset, size))
                self._keys.append((request.id, index))
        layout = layout_fingerprint([[r.id, list(r.offsets), list(r.sizes)]
                                     for r in file_stream_requests])
        with reference_errors():
            self._shared = SharedLoad(
                ranges, None, layout=layout, device=device,
                stream_options={"s3_credentials": credentials,
                                "memory_limit": memory_limit_setting()})

    def ring_info(self) -> Optional[Tuple[int, int, int]]:
        """The reference's (rank, buffers, buffer bytes) of its CPU ring; tensorstream
        builds no ring (its pipeline buffers reads itself), so always None."""
        return None

    def get_chunks(self) -> Iterator:
        """Yields ``(id, chunk_index, tensor)`` for every range, each once, as uint8
        tensors of shape (1, size) on the device, each owning its memory."""
        if self._shared is None:
            yield from self.file_streamer.get_chunks()
            return
        with reference_errors():
            for index, tensor in self._shared.items():
                request_id, chunk_index = self._keys[index]
                yield request_id, chunk_index, tensor.view(1, -1)
