"""SafeTensors metadata and torch glue, as
``runai_model_streamer.safetensors_streamer.safetensors_pytorch`` of runai-model-streamer
0.17.1 (vLLM 0.33 imports ``prepare_request`` from here).

Headers are parsed and validated by tensorstream's library (one pass, nesting bounded,
the reference's checks and wording plus the file and the tensor); this module turns the
result into the reference's objects. ``SafetensorsMetadata(blob, offset)`` also accepts a
header that the caller parsed itself, with the same checks.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import tensorstream
from tensorstream import S3Credentials
from tensorstream._dtypes import DTYPES
from tensorstream._stream import _bulk_allocation

from .._errors import reference_errors

SAFETENSORS_DATA_OFFSETS_KEY = "data_offsets"
SAFETENSORS_NAME_KEY = "name"
SAFETENSORS_SHAPE_KEY = "shape"
SAFETENSORS_DTYPE_KEY = "dtype"
SAFETENSORS_HEADER_BUFFER_SIZE = 8
MAX_HEADER_SIZE = 100 * 1024 * 1024

# Safetensors dtypes whose torch element holds several values, packed along the last axis.
PACKED_VALUES_PER_ELEMENT = {"F4": 2}


def get_safetensors_dtype_map() -> dict:
    """SafeTensors dtype name -> torch dtype, for every dtype this torch has (the mapping
    of ``safetensors.torch``; F4 is float4_e2m1fn_x2)."""
    import torch

    return {name: getattr(torch, info.torch_name) for name, info in DTYPES.items()
            if hasattr(torch, info.torch_name)}


_dtype_map: Optional[dict] = None


def _torch_dtypes() -> dict:
    global _dtype_map
    if _dtype_map is None:
        _dtype_map = get_safetensors_dtype_map()
    return _dtype_map


def __getattr__(name: str):
    # The reference builds this map at import, which needs torch; here it is built on first
    # use, so that importing the drop-in never needs torch.
    if name == "safetensors_to_torch_dtype":
        return _torch_dtypes()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def element_size_of(torch_dtype) -> int:
    """Bytes per element of a torch dtype."""
    return torch_dtype.itemsize


class Offsets:
    """``data_offsets`` of a tensor: its byte range relative to the data section."""

    __slots__ = ("start", "end")

    def __init__(self, offsets: List[int]) -> None:
        self.start = offsets[0]
        self.end = offsets[1]

    def get_diff(self) -> int:
        return self.end - self.start


class SafetensorMetadata:
    """One tensor of a header: ``name``, ``shape`` (the file's, a list), ``dtype`` (its
    SafeTensors name, e.g. "BF16") and ``offsets`` (relative to the data section)."""

    __slots__ = ("name", "shape", "dtype", "offsets")

    def __init__(self, name: str, safetensorMetadata: Dict[str, Any]) -> None:  # noqa: N803
        self.name = name
        self.shape = safetensorMetadata[SAFETENSORS_SHAPE_KEY]
        self.dtype = safetensorMetadata[SAFETENSORS_DTYPE_KEY]
        self.offsets = Offsets(safetensorMetadata[SAFETENSORS_DATA_OFFSETS_KEY])
        self._validate_shape_consistency()

    @classmethod
    def _validated(cls, name: str, dtype: str, shape: List[int], start: int,
                   end: int) -> "SafetensorMetadata":
        """An entry from a header tensorstream already validated (no checks, no dicts)."""
        entry = object.__new__(cls)
        entry.name, entry.dtype, entry.shape = name, dtype, shape
        offsets = object.__new__(Offsets)
        offsets.start, offsets.end = start, end
        entry.offsets = offsets
        return entry

    def _values_per_element(self) -> int:
        return PACKED_VALUES_PER_ELEMENT.get(self.dtype, 1)

    def get_storage_shape(self) -> List[int]:
        """The torch tensor's shape: the header's, except that a packed dtype (F4, two
        values per float4_e2m1fn_x2 element) halves the last dimension."""
        values = self._values_per_element()
        if values == 1:
            return list(self.shape)
        if not self.shape or self.shape[-1] % values != 0:
            raise ValueError(
                f"Corrupted Tensor '{self.name}': {self.dtype} packs {values} values per element "
                f"along the last axis, so shape {self.shape} cannot be represented as a torch "
                f"tensor (the last dimension must be a multiple of {values}).")
        return list(self.shape[:-1]) + [self.shape[-1] // values]

    def _validate_shape_consistency(self) -> None:
        elements = 1
        for dim in self.get_storage_shape():
            elements *= dim
        expected = elements * self.get_element_size()
        if expected != self.offsets.get_diff():
            raise ValueError(
                f"Corrupted Tensor '{self.name}': Shape claims {expected} bytes "
                f"({self.shape} x {self.dtype}), but offsets reserve {self.offsets.get_diff()} bytes.")

    def get_bytesize(self) -> int:
        return self.offsets.end - self.offsets.start

    def get_item_count(self) -> int:
        count = 1
        for dim in self.get_storage_shape():
            count *= dim
        return count

    def get_element_size(self) -> int:
        return self.get_torch_dtype().itemsize

    def get_torch_dtype(self):
        dtype = _torch_dtypes().get(self.dtype)
        if dtype is None:
            raise ValueError(f"Unsupported dtype '{self.dtype}' in tensor '{self.name}'")
        return dtype

    def __repr__(self) -> str:
        return f"SafetensorMetadata(name={self.name!r}, dtype={self.dtype}, shape={self.shape})"


class SafetensorsMetadata:
    """A file's tensors sorted by offset (zero-size ones first where they tie), with the
    data section's ``offset`` in the file and each tensor's ``read_sizes``."""

    def __init__(self, blob: Dict[str, Any], offset: int) -> None:
        self.offset = offset
        tensors = []
        for name, entry in blob.items():
            if name == "__metadata__":
                continue
            if SAFETENSORS_DATA_OFFSETS_KEY not in entry:
                raise ValueError(f"Corrupted Header: Tensor '{name}' missing {SAFETENSORS_DATA_OFFSETS_KEY}")
            tensors.append(SafetensorMetadata(name, entry))
        self._set(tensors)

    def _set(self, tensors: List[SafetensorMetadata]) -> None:
        tensors.sort(key=lambda t: (t.offsets.start, t.get_bytesize()))
        if tensors and tensors[0].offsets.start != 0:
            raise ValueError(f"Corrupted File: Tensor '{tensors[0].name}' does not start at the "
                             f"beginning of the data section (starts at {tensors[0].offsets.start}).")
        for current, following in zip(tensors, tensors[1:]):
            if current.offsets.start > current.offsets.end:
                raise ValueError(f"Corrupted Offset: Tensor '{current.name}' start "
                                 f"({current.offsets.start}) > end ({current.offsets.end})")
            end = current.offsets.start + current.get_bytesize()
            if end > following.offsets.start:
                raise ValueError(f"Corrupted File: Tensor '{current.name}' overlaps with next tensor. "
                                 f"(Ends at {end}, next starts at {following.offsets.start})")
            if end < following.offsets.start:
                raise ValueError(f"Corrupted File: Gaps between tensors are not allowed. Tensor "
                                 f"'{current.name}' ends at {end}, but next tensor starts at "
                                 f"{following.offsets.start}.")
        self.tensors_metadata = tensors
        self.read_sizes = [t.get_bytesize() for t in tensors]

    @classmethod
    def _of_file(cls, stream: tensorstream.Stream, index: int) -> "SafetensorsMetadata":
        """The metadata of file ``index`` of a stream (its header already validated)."""
        infos = stream.tensors(index)
        start = stream.data_offset(index)
        metadata = object.__new__(cls)
        metadata.offset = start
        make = SafetensorMetadata._validated
        with _bulk_allocation():
            metadata.tensors_metadata = [
                make(info.name, info.dtype, list(info.shape), info.offset - start,
                     info.offset - start + info.nbytes) for info in infos]
            metadata.read_sizes = [info.nbytes for info in infos]
        _check_torch_can_hold(metadata.tensors_metadata)
        return metadata

    @staticmethod
    def from_files(fs: Any, filenames: List[str], s3_credentials: Optional[S3Credentials],
                   discover_ranks: bool = True) -> List["SafetensorsMetadata"]:
        """The metadata of every file, headers read and validated by tensorstream (``fs``
        is accepted for compatibility; the headers are read on a stream of their own)."""
        with reference_errors(), tensorstream.Stream(s3_credentials=s3_credentials) as stream:
            return [SafetensorsMetadata._of_file(stream, stream.add_file(path))
                    for path in filenames]


def _check_torch_can_hold(tensors: List[SafetensorMetadata]) -> None:
    """ValueError, as the reference raises when it parses the header, for a dtype this
    torch lacks or a packed tensor torch cannot shape."""
    seen = set()
    for tensor in tensors:
        if tensor.dtype not in seen:
            tensor.get_torch_dtype()
            seen.add(tensor.dtype)
        if tensor.dtype in PACKED_VALUES_PER_ELEMENT:
            tensor.get_storage_shape()


def prepare_request(fs: Any, paths: List[str], s3_credentials: Optional[S3Credentials],
                    discover_ranks: bool = True) -> List[Tuple[int, List[SafetensorMetadata], List[int]]]:
    """``(data offset, tensors sorted by offset, their byte sizes)`` for every file."""
    return [(m.offset, m.tensors_metadata, m.read_sizes)
            for m in SafetensorsMetadata.from_files(fs, paths, s3_credentials, discover_ranks)]


def requires_alignment_copy(buffer: Any, tensor_metadata: SafetensorMetadata) -> bool:
    """Whether ``buffer``'s address cannot be read as the tensor's dtype (it must be a
    multiple of the element size)."""
    if tensor_metadata.get_item_count() == 0:
        return False
    element_size = tensor_metadata.get_element_size()
    return element_size > 1 and buffer.data_ptr() % element_size != 0


def create_torch_tensor(buffer: Any, tensor_metadata: SafetensorMetadata):
    """The uint8 ``buffer`` viewed as the tensor (its dtype and storage shape); a zero-size
    tensor is allocated on the buffer's device."""
    import torch

    shape = tensor_metadata.get_storage_shape()
    if tensor_metadata.get_item_count() == 0:
        return torch.empty(shape, dtype=tensor_metadata.get_torch_dtype(), device=buffer.device)
    return buffer.view(tensor_metadata.get_torch_dtype()).view(shape)
