"""SafetensorsStreamer, ObjectStorageModel, list_safetensors and pull_files, as
``runai_model_streamer.safetensors_streamer.safetensors_streamer`` of runai-model-streamer
0.17.1, over one tensorstream Stream per load.

Differences from the reference, all on the safe side: tensors are owned by default and
never a view of a reused buffer (``owned=False`` opts into zero-copy views of a local
file's copy-on-write mapping instead); a load may mix local files and object-store URIs;
explicit credentials are honoured; pull_files checks every key before it writes anything.
"""
from __future__ import annotations

import fcntl
import glob
import logging
import os
import shutil
from collections import Counter
from timeit import default_timer as timer
from typing import Collection, Dict, Iterator, List, Optional

import tensorstream
from tensorstream import S3Credentials
from tensorstream._api import resolve_device
from tensorstream._distributed import LoadRange, SharedLoad, layout_fingerprint
from tensorstream._tensors import typed_tensor

from .._errors import reference_errors
from ..distributed_streamer.distributed_streamer import DistributedStreamer
from ..file_streamer.file_streamer import host_or_device
from ..file_streamer.requests_iterator import memory_limit_setting
from ..s3_utils import s3_utils
from .safetensors_pytorch import SafetensorMetadata, SafetensorsMetadata

logger = logging.getLogger(__name__)

SAFETENSORS_PATTERN = "*.safetensors"


def list_safetensors(path: str, s3_credentials: Optional[S3Credentials] = None) -> List[str]:
    """The ``*.safetensors`` files directly in ``path`` (not recursive), sorted: full URIs
    for an object-store prefix, paths for a local directory."""
    if s3_utils.is_object_store_path(path):
        return s3_utils.glob(path, [SAFETENSORS_PATTERN], s3_credentials)
    return sorted(glob.glob(os.path.join(glob.escape(os.fspath(path)), SAFETENSORS_PATTERN)))


def pull_files(model_path: str, dst: str, allow_pattern: Optional[List[str]] = None,
               ignore_pattern: Optional[List[str]] = None,
               s3_credentials: Optional[S3Credentials] = None) -> None:
    """Downloads the objects below an object-store prefix into ``dst`` (recursive); see
    s3_utils.pull_files. Local paths raise NotImplementedError, as in the reference."""
    if not s3_utils.is_object_store_path(model_path):
        raise NotImplementedError("pull files is not implemented for file system paths")
    s3_utils.pull_files(model_path, dst, allow_pattern, ignore_pattern, s3_credentials)


class ObjectStorageModel:
    """Downloads an object-store model into ``dst`` once per host, whatever the number of
    processes doing the same (fcntl.flock on ``dst + ".lock"``).

    If ``dst`` holds the completion marker SENTINEL_NAME, pull_files does nothing.
    Otherwise ``dst`` is emptied, the caller pulls, and a clean exit writes the marker; an
    exception leaves none, so the next process downloads again.

        with ObjectStorageModel(model_path="s3://bucket/model", dst=local_dir) as model:
            model.pull_files(allow_pattern=["*.json"])
    """

    SENTINEL_NAME = ".runai_complete"

    def __init__(self, model_path: str, dst: str,
                 s3_credentials: Optional[S3Credentials] = None) -> None:
        if not s3_utils.is_object_store_path(model_path):
            raise ValueError(f"model_path {model_path!r} is not a supported object storage path "
                             "(expected s3://, gs://, or az://)")
        self.dir = os.fspath(dst).rstrip("/") or "/"
        self._model_path = model_path if model_path.endswith("/") else model_path + "/"
        self._s3_credentials = s3_credentials
        self._sentinel = os.path.join(self.dir, self.SENTINEL_NAME)
        os.makedirs(os.path.dirname(self.dir) or ".", exist_ok=True)
        self._lock = open(self.dir + ".lock", "a")
        try:
            # Exclusive from the start: two processes that both hold a shared lock and
            # wait to upgrade it would wait for each other forever.
            fcntl.flock(self._lock, fcntl.LOCK_EX)
            self._skip = os.path.exists(self._sentinel)
            if self._skip:  # nothing to write: let the other readers in
                fcntl.flock(self._lock, fcntl.LOCK_SH)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)
                os.makedirs(self.dir)
        except BaseException:
            self._unlock()
            raise

    def pull_files(self, allow_pattern: Optional[List[str]] = None,
                   ignore_pattern: Optional[List[str]] = None) -> None:
        """Pulls the objects matching the patterns, unless an earlier process completed."""
        if not self._skip:
            pull_files(self._model_path, self.dir, allow_pattern, ignore_pattern,
                       self._s3_credentials)

    def _unlock(self) -> None:
        if not self._lock.closed:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()

    def __enter__(self) -> "ObjectStorageModel":
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> bool:
        try:
            if exc_type is None and not self._skip:
                if not any(name != self.SENTINEL_NAME for name in os.listdir(self.dir)):
                    raise RuntimeError(f"No files were downloaded to {self.dir!r} — verify that "
                                       f"the model path is correct ({self._model_path})")
                with open(self._sentinel, "w"):
                    pass
                self._skip = True
        finally:
            self._unlock()
        return False

    def __del__(self) -> None:
        if getattr(self, "_lock", None) is not None:
            self._unlock()


def _natural_size(size: float) -> str:
    """``humanize.naturalsize(size, binary=True)``, as the reference prints sizes."""
    if abs(size) < 1024:
        return "1 Byte" if size == 1 else f"{int(size)} Bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB"):
        size /= 1024
        if abs(size) < 1024:
            break
    return f"{size:.1f} {unit}"


class SafetensorsStreamer:
    """Streams the tensors of SafeTensors files; a context manager.

    ``stream_files`` parses every header (errors name the file and the tensor), fills
    ``files_to_tensors_metadata`` (file index -> one SafetensorMetadata per tensor, sorted
    by offset) and starts reading; ``get_tensors`` then yields ``(name, tensor)`` in
    completion order, and logs the load's throughput at INFO when done. The memory
    options (RUNAI_STREAMER_MEMORY_LIMIT, ...) are read at each stream_files call.
    """

    def __init__(self) -> None:
        self.file_streamer = DistributedStreamer()
        self.files_to_tensors_metadata: Dict[int, List[SafetensorMetadata]] = {}
        self.total_size = 0
        self.device_str = None
        self.start_time = None
        self.unaligned_copies = 0  # the reference's counter; copies are made in tensorstream
        self._stream: Optional[tensorstream.Stream] = None
        self._device = "cpu"
        self._names: List[List[str]] = []
        self._paths: List[str] = []
        self._s3_credentials: Optional[S3Credentials] = None
        # A load shared by the ranks of a torch.distributed group, and the TensorInfo of
        # each of its ranges (every tensor of every file, in order).
        self._shared: Optional[SharedLoad] = None
        self._shared_infos: list = []

    def __enter__(self) -> "SafetensorsStreamer":
        self.file_streamer.__enter__()
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        self._close()
        self.file_streamer.__exit__(exc_type, exc_value, traceback)

    def _close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        if self._shared is not None:
            self._shared.close()
            self._shared = None

    def stream_file(self, path: str, s3_credentials: Optional[S3Credentials] = None,
                    device: Optional[str] = "cpu", is_distributed: bool = False,
                    tensor_names: Optional[Collection[str]] = None, owned: bool = True) -> None:
        """stream_files([path], ...)."""
        return self.stream_files([path], s3_credentials=s3_credentials, device=device,
                                 is_distributed=is_distributed, tensor_names=tensor_names,
                                 owned=owned)

    def stream_files(self, paths: List[str], s3_credentials: Optional[S3Credentials] = None,
                     device: Optional[str] = "cpu", is_distributed: bool = False,
                     tensor_names: Optional[Collection[str]] = None, owned: bool = True) -> None:
        """Parses every header and starts streaming the tensors of ``paths`` (local paths
        and object-store URIs, mixed as you like) to ``device`` (any torch device: "cpu",
        "cuda" and "cuda:N" are streamed natively, others through ``.to()``).

        ``tensor_names``: only those tensors are read (only their bytes); a str, an empty
        collection, a name in no file or in more than one file is a ValueError.
        ``owned=True`` (the default): every tensor holds bytes that nothing else changes or
        frees. ``owned=False``: local tensors may be views of a copy-on-write mapping of
        the file (no copy; a file rewritten on disk afterwards changes them)."""
        if isinstance(tensor_names, str):
            raise ValueError("tensor_names must be a collection of names, not a single str")
        if tensor_names is not None and len(tensor_names) == 0:
            raise ValueError("tensor_names must not be empty - pass None to load every tensor")
        wanted = None if tensor_names is None else frozenset(tensor_names)
        self._close()
        self.files_to_tensors_metadata = {}
        self.total_size = 0
        self.device_str = device
        self.unaligned_copies = 0
        self.start_time = timer()
        limit = memory_limit_setting()
        paths = [os.fspath(p) for p in paths]
        target = host_or_device(device)
        self.file_streamer.set_is_distributed(is_distributed, target)
        if self.file_streamer.is_distributed:
            return self._start_shared(paths, s3_credentials, target, wanted, limit)

        with reference_errors():
            if target.startswith("cuda"):
                # CUDA is checked before any read; every file then streams in one pass
                # into device memory the library allocates (tensorstream.stream's way).
                target = resolve_device(target)
                stream = tensorstream.Stream(s3_credentials=s3_credentials, device=target)
            else:
                stream = tensorstream.Stream(s3_credentials=s3_credentials, memory_limit=limit,
                                             host_memory="private" if owned else "mapped")
        try:
            with reference_errors():
                files = [SafetensorsMetadata._of_file(stream, stream.add_file(p)) for p in paths]
            metadata = self._select(stream, files, wanted)
            with reference_errors():
                stream.start()
        except BaseException:
            stream.close()
            raise
        self._stream, self._device = stream, target
        self._paths, self._s3_credentials = paths, s3_credentials
        self._names = [[info.name for info in stream.tensors(i)] for i in range(len(paths))]
        self.files_to_tensors_metadata = metadata
        self.total_size = sum(t.get_bytesize() for entries in metadata.values() for t in entries)

    def _start_shared(self, paths: List[str], s3_credentials: Optional[S3Credentials],
                      target: str, wanted: Optional[frozenset], limit: int) -> None:
        """stream_files for a load shared by the ranks (tensorstream._distributed): every
        rank parses the headers; what goes wrong on one rank before the reads (a file it
        cannot read, a name it cannot find) is told to every rank, and all of them raise."""
        ranges, wanted_ranges, infos, layout = [], [], [], []
        metadata: Dict[int, List[SafetensorMetadata]] = {}
        error, stream = None, None
        try:
            if target.startswith("cuda"):
                target = resolve_device(target)
            stream = tensorstream.Stream(s3_credentials=s3_credentials, memory_limit=limit)
            files = [SafetensorsMetadata._of_file(stream, stream.add_file(p)) for p in paths]
            metadata = self._select(stream, files, wanted)
            for index, path in enumerate(paths):
                chosen = {t.name for t in metadata[index]}
                file_infos = stream.tensors(index)  # offsets are absolute
                layout.append([[t.name, t.dtype, list(t.shape), t.offset, t.nbytes]
                               for t in file_infos])
                for info in file_infos:
                    if info.name in chosen:
                        wanted_ranges.append(len(ranges))
                    ranges.append(LoadRange(path, info.offset, info.nbytes))
                    infos.append(info)
        except Exception as caught:  # noqa: BLE001 - every rank must hear of it
            error = caught
        finally:
            if stream is not None:
                stream.close()
        with reference_errors():
            self._shared = SharedLoad(
                ranges, None if wanted is None else wanted_ranges,
                layout=layout_fingerprint(layout), device=target, prepare_error=error,
                stream_options={"s3_credentials": s3_credentials, "memory_limit": limit})
        self._shared_infos, self._device = infos, target
        self._paths, self._s3_credentials = paths, s3_credentials
        self.files_to_tensors_metadata = metadata
        self.total_size = sum(t.get_bytesize() for entries in metadata.values() for t in entries)

    @staticmethod
    def _select(stream: tensorstream.Stream, files: List[SafetensorsMetadata],
                wanted: Optional[frozenset]) -> Dict[int, List[SafetensorMetadata]]:
        """Each file's entries, only the wanted ones when ``wanted`` is given (checked as
        the reference checks it), and the stream restricted to them."""
        if wanted is None:
            return {i: m.tensors_metadata for i, m in enumerate(files)}
        kept = {i: [t for t in m.tensors_metadata if t.name in wanted] for i, m in enumerate(files)}
        names = [t.name for entries in kept.values() for t in entries]
        missing = wanted - set(names)
        if missing:
            raise ValueError(f"tensor_names not found in checkpoint: {sorted(missing)}")
        if len(set(names)) != len(names):
            twice = sorted(name for name, count in Counter(names).items() if count > 1)
            raise ValueError(f"tensor_names requested tensors that appear in more than one file: "
                             f"{twice}")
        for i, entries in kept.items():
            stream.select(i, [t.name for t in entries])
        return kept

    def get_tensors(self) -> Iterator:
        """Yields ``(name, torch.Tensor)`` for every (selected) tensor of every file, once
        each, in completion order, with the exact dtype and shape, on the device; then logs
        the throughput of the load at INFO."""
        stream = self._stream
        if stream is None and self._shared is None:
            raise tensorstream.FailedPreconditionError("get_tensors() before stream_files()")
        with reference_errors():
            if self._shared is not None:
                infos = self._shared_infos
                for index, raw in self._shared.items():
                    yield infos[index].name, typed_tensor(raw, infos[index])
            elif self._device.startswith("cuda"):
                yield from self._device_tensors()
            else:
                names, device = self._names, self._device
                for file_index, index, tensor in stream.torch_items():
                    yield names[file_index][index], (tensor if device == "cpu" else tensor.to(device))
        self._log_throughput()

    def _device_tensors(self) -> Iterator:
        names = self._names
        for file_index, index, tensor in self._stream.device_items():
            yield names[file_index][index], tensor

    def _log_throughput(self) -> None:
        if self.start_time is None:
            return
        elapsed = timer() - self.start_time
        rate = self.total_size / elapsed if elapsed > 0 else 0
        logger.info(f"[RunAI Streamer] Overall time to stream {_natural_size(self.total_size)} of "
                    f"all files to {self.device_str}: {round(elapsed, 2)}s, {_natural_size(rate)}/s")

