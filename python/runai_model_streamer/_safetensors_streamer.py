"""SafetensorsStreamer: the tensors of SafeTensors files, in completion order."""
from __future__ import annotations

import math
from typing import Dict, Iterator, List, Optional

from tensorstream import FailedPreconditionError, S3Credentials, Stream, TensorInfo, resolve_device
from tensorstream._api import device_file_items
from tensorstream._dtypes import torch_dtype

from ._file_streamer import _StreamOwner, _why_not_distributed, logger


class Offsets:
    """``data_offsets`` of a tensor: byte range relative to the start of the data section."""

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end

    def get_diff(self) -> int:
        return self.end - self.start


class SafetensorMetadata:
    """One tensor of a file's header, as in ``files_to_tensors_metadata``.

    ``shape`` is the file's shape and ``dtype`` its SafeTensors name (e.g. "BF16")."""

    def __init__(self, info: TensorInfo, data_start: int) -> None:
        self.name = info.name
        self.shape = list(info.shape)
        self.dtype = info.dtype
        self.offsets = Offsets(info.offset - data_start, info.offset - data_start + info.nbytes)

    def get_bytesize(self) -> int:
        return self.offsets.get_diff()

    def get_item_count(self) -> int:
        return math.prod(self.shape)

    def get_torch_dtype(self):
        return torch_dtype(self.dtype, f"tensor '{self.name}'")

    def __repr__(self) -> str:
        return f"SafetensorMetadata(name={self.name!r}, dtype={self.dtype}, shape={self.shape})"


class SafetensorsStreamer(_StreamOwner):
    """Streams the tensors of SafeTensors files; a context manager.

    ``stream_files`` parses every header (errors name the file), fills
    ``files_to_tensors_metadata`` (file index -> one SafetensorMetadata per tensor, sorted
    by offset) and starts reading; ``get_tensors`` then yields ``(name, tensor)`` in
    completion order. Every tensor owns its memory: it may be kept after the loop and
    after the streamer is closed. Each stream_files call replaces the previous one.
    The memory options (RUNAI_STREAMER_MEMORY_LIMIT, ...) are read at stream_files.
    """

    def __init__(self, process_group=None) -> None:
        self.process_group = process_group  # accepted for compatibility, see DistributedStreamer
        self.files_to_tensors_metadata: Dict[int, List[SafetensorMetadata]] = {}
        self._stream: Optional[Stream] = None
        self._device = "cpu"
        self._paths: List[str] = []
        self._s3_credentials: Optional[S3Credentials] = None

    def stream_file(self, path: str, s3_credentials: Optional[S3Credentials] = None,
                    device: Optional[str] = "cpu", is_distributed: bool = False) -> None:
        """stream_files([path], ...)."""
        self.stream_files([path], s3_credentials, device, is_distributed)

    def stream_files(self, paths: List[str], s3_credentials: Optional[S3Credentials] = None,
                     device: Optional[str] = "cpu", is_distributed: bool = False) -> None:
        """Parses the headers of ``paths`` (local paths or object-store URIs) and starts
        streaming. The device is checked first: "cpu", "cuda" or "cuda:N" (CUDA: the
        library streams each file through pinned staging straight into tensors it
        allocates on the device, file after file). Options come from the environment as it
        is now. ``is_distributed``: see DistributedStreamer (every rank reads all)."""
        self._close()
        self.files_to_tensors_metadata = {}
        self._device = resolve_device(device)
        if is_distributed:
            logger.info("[tensorstream] distributed streaming requested: %s; every rank "
                        "reads all of its files", _why_not_distributed())
        stream = Stream(s3_credentials=s3_credentials)
        self._paths = list(paths)
        self._s3_credentials = s3_credentials
        try:
            metadata = {}
            for path in paths:
                index = stream.add_file(path)
                infos = stream.tensors(index)
                data_start = infos[0].offset if infos else 0
                metadata[index] = [SafetensorMetadata(info, data_start) for info in infos]
            if self._device == "cpu":
                stream.start()
        except BaseException:
            stream.close()
            raise
        self._stream = stream
        self.files_to_tensors_metadata = metadata

    def get_tensors(self) -> Iterator:
        """Yields ``(name, torch.Tensor)`` for every tensor of every file, once each, in
        completion order, with the exact dtype and shape, on the requested device."""
        if self._stream is None:
            raise FailedPreconditionError("get_tensors() before stream_files()")
        if self._device != "cpu":
            for index, path in enumerate(self._paths):
                infos = self._stream.tensors(index)
                for name, tensor, _ in device_file_items(
                        path, infos, self._device, {"s3_credentials": self._s3_credentials}):
                    yield name, tensor
            return
        for item in self._stream:
            yield item.name, item.to_torch()
