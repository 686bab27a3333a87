"""Drop-in replacement for runai-model-streamer 0.17's Python API, over tensorstream.

    from runai_model_streamer import SafetensorsStreamer
    with SafetensorsStreamer() as streamer:
        streamer.stream_files(paths)
        for name, tensor in streamer.get_tensors():
            ...

Differences from the reference, all on the safe side: yielded tensors own their memory
(keeping them is safe, no clone needed); options from the environment are read at each
stream_files call; explicit S3Credentials are honoured; pull_files never writes outside its
destination. Not yet: splitting reads across torch.distributed ranks (every rank reads
everything, see DistributedStreamer).

Importing needs neither torch, nor a GPU, nor cloud credentials.
"""
import logging as _logging
import os as _os

from tensorstream import S3Credentials

from ._file_streamer import DistributedStreamer, FileChunks, FileStreamer
from ._object_storage import ObjectStorageModel, list_safetensors, pull_files
from ._safetensors_streamer import SafetensorMetadata, SafetensorsStreamer

__all__ = [
    "SafetensorsStreamer",
    "ObjectStorageModel",
    "DistributedStreamer",
    "FileStreamer",
    "FileChunks",
    "list_safetensors",
    "pull_files",
    "S3Credentials",
    "SafetensorMetadata",
]

_level = _os.environ.get("RUNAI_STREAMER_LOG_LEVEL", "").upper()
if _level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    _logging.getLogger(__name__).setLevel(_level)
