"""StreamerPatcher, as ``runai_model_streamer.safetensors_streamer.streamer_mock`` of
runai-model-streamer 0.17.1 (vLLM's tests use it): object-store URIs redirected to a local
directory, so that code written for s3:// or gs:// runs on local files.

``s3://bucket/path/to/file`` becomes ``<local_bucket_path>/path/to/file``.
"""
from __future__ import annotations

import logging
import os
import shutil
from typing import Any, Collection, Iterator, List, Optional
from urllib.parse import urlparse

from ..s3_utils.s3_utils import S3Credentials, filter_allow, filter_ignore, is_gs_path, is_s3_path
from .safetensors_streamer import SafetensorsStreamer, list_safetensors

logger = logging.getLogger(__name__)


class StreamerPatcher:
    """Shims for list_safetensors, pull_files and SafetensorsStreamer over a local
    directory standing in for a bucket."""

    def __init__(self, local_bucket_path: str) -> None:
        self.local_path = local_bucket_path

    def is_remote_path(self, path: str) -> bool:
        return is_s3_path(path) or is_gs_path(path)

    def convert_remote_path_to_local_path(self, path: str) -> str:
        """The local path standing for an s3:// or gs:// URI (other paths unchanged)."""
        if not self.is_remote_path(path):
            return path
        return os.path.join(self.local_path, urlparse(path).path.lstrip("/"))

    def convert_local_path_to_mocked_remote_path(self, local_path_result: str,
                                                 original_remote_path: str) -> str:
        """A local path below local_path as a URI in the original URI's bucket."""
        if not local_path_result.startswith(self.local_path):
            logger.warning("Local path result '%s' does not start with '%s'. Returning original.",
                           local_path_result, self.local_path)
            return local_path_result
        relative = os.path.relpath(local_path_result, self.local_path).replace(os.path.sep, "/")
        parsed = urlparse(original_remote_path)
        return f"{parsed.scheme}://{parsed.netloc}/{relative}"

    def shim_list_safetensors(self, path: str,
                              s3_credentials: Optional[S3Credentials] = None) -> List[str]:
        local = list_safetensors(self.convert_remote_path_to_local_path(path), s3_credentials)
        return [self.convert_local_path_to_mocked_remote_path(p, path) for p in local]

    def shim_pull_files(self, model_path: str, dst: str,
                        allow_pattern: Optional[List[str]] = None,
                        ignore_pattern: Optional[List[str]] = None,
                        s3_credentials: Optional[S3Credentials] = None) -> None:
        """Copies the files below the local stand-in of ``model_path`` into ``dst``,
        filtered as pull_files filters object keys (relative paths here)."""
        if not self.is_remote_path(model_path):
            raise NotImplementedError("pull files is not implemented for file system paths")
        source = self.convert_remote_path_to_local_path(model_path)
        relative = [os.path.relpath(os.path.join(root, name), source).replace(os.path.sep, "/")
                    for root, _, names in os.walk(source) for name in names]
        relative = filter_ignore(relative, ["*/"])
        if allow_pattern:
            relative = filter_allow(relative, allow_pattern)
        if ignore_pattern:
            relative = filter_ignore(relative, ignore_pattern)
        for path in relative:
            target = os.path.join(dst, *path.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy(os.path.join(source, *path.split("/")), target)

    def create_mock_streamer(self, *args: Any, **kwargs: Any) -> "StreamerPatcher.MockSafetensorsStreamer":
        return self.MockSafetensorsStreamer(self)

    class MockSafetensorsStreamer:
        """A SafetensorsStreamer whose paths go through the patcher first."""

        def __init__(self, patcher: "StreamerPatcher") -> None:
            self.patcher = patcher
            self.original_streamer = SafetensorsStreamer()
            self.files_to_tensors_metadata = {}

        def __enter__(self) -> "StreamerPatcher.MockSafetensorsStreamer":
            self.original_streamer.__enter__()
            return self

        def __exit__(self, exc_type, exc_value, traceback) -> None:
            return self.original_streamer.__exit__(exc_type, exc_value, traceback)

        def stream_file(self, path: str, s3_credentials: Optional[S3Credentials] = None,
                        device: Optional[str] = "cpu", is_distributed: bool = False,
                        tensor_names: Optional[Collection[str]] = None, owned: bool = True) -> None:
            self.stream_files([path], s3_credentials=s3_credentials, device=device,
                              is_distributed=is_distributed, tensor_names=tensor_names, owned=owned)

        def stream_files(self, paths: List[str], s3_credentials: Optional[S3Credentials] = None,
                         device: Optional[str] = "cpu", is_distributed: bool = False,
                         tensor_names: Optional[Collection[str]] = None, owned: bool = True) -> None:
            self.original_streamer.stream_files(
                [self.patcher.convert_remote_path_to_local_path(p) for p in paths],
                s3_credentials=s3_credentials, device=device, is_distributed=is_distributed,
                tensor_names=tensor_names, owned=owned)
            self.files_to_tensors_metadata = self.original_streamer.files_to_tensors_metadata

        def get_tensors(self) -> Iterator:
            return self.original_streamer.get_tensors()
