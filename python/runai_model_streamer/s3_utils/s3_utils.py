"""Object-store paths and credentials, as ``runai_model_streamer.s3_utils.s3_utils`` of
runai-model-streamer 0.17.1 (the only module S3Credentials is importable from there).

Every store (s3://, gs://, az://) is read by tensorstream's own library, so the glob and
pull helpers need no extra package; they list and download through ``tensorstream``.
"""
from __future__ import annotations

import fnmatch
import os
from typing import List, Optional

import tensorstream
from tensorstream import S3Credentials

__all__ = [
    "S3Credentials", "is_s3_path", "is_gs_path", "is_azure_path", "is_object_store_path",
    "s3_glob", "gcs_glob", "azure_glob", "s3_pull_files", "gcs_pull_files", "azure_pull_files",
    "filter_allow", "filter_ignore", "removeprefix",
]

S3_PROTOCOL_PREFIX = "s3://"
GCS_PROTOCOL_PREFIX = "gs://"
AZURE_PROTOCOL_PREFIX = "az://"
DEFAULT_GCS_ENDPOINT_URL = "https://storage.googleapis.com"
AWS_ENDPOINT_URL_ENV = "AWS_ENDPOINT_URL"
AWS_EC2_METADATA_DISABLED_ENV = "AWS_EC2_METADATA_DISABLED"


def _text(path) -> str:
    return os.fspath(path) if isinstance(path, os.PathLike) else path


def is_s3_path(path) -> bool:
    return _text(path).startswith(S3_PROTOCOL_PREFIX)


def is_gs_path(path) -> bool:
    return _text(path).startswith(GCS_PROTOCOL_PREFIX)


def is_azure_path(path) -> bool:
    return _text(path).startswith(AZURE_PROTOCOL_PREFIX)


def is_object_store_path(path) -> bool:
    return is_s3_path(path) or is_gs_path(path) or is_azure_path(path)


def filter_allow(paths: List[str], patterns: List[str]) -> List[str]:
    """The paths matching at least one fnmatch pattern."""
    return [p for p in paths if any(fnmatch.fnmatch(p, pattern) for pattern in patterns)]


def filter_ignore(paths: List[str], patterns: List[str]) -> List[str]:
    """The paths matching none of the fnmatch patterns."""
    return [p for p in paths if not any(fnmatch.fnmatch(p, pattern) for pattern in patterns)]


def removeprefix(s: str, prefix: str) -> str:
    return s[len(prefix):] if s.startswith(prefix) else s


def object_key(uri: str) -> str:
    """The key of "scheme://bucket/key"."""
    return uri.split("://", 1)[1].partition("/")[2]


def glob(path: str, allow_pattern: Optional[List[str]] = None,
         credentials: Optional[S3Credentials] = None) -> List[str]:
    """Full URIs of the objects directly under the prefix ``path`` (not recursive) whose
    key matches one of ``allow_pattern`` (None: every object), sorted."""
    entries = tensorstream.list(path, s3_credentials=credentials)
    keys = [e.uri for e in entries if not e.is_directory]
    if allow_pattern is not None:
        keys = [uri for uri in keys
                if any(fnmatch.fnmatch(object_key(uri), p) for p in allow_pattern)]
    return sorted(keys)


def pull_files(model_path: str, dst: str, allow_pattern: Optional[List[str]] = None,
               ignore_pattern: Optional[List[str]] = None,
               credentials: Optional[S3Credentials] = None) -> None:
    """Downloads every object below the prefix (recursive) into ``dst``, keeping the paths
    below the prefix; an object is pulled when its whole key matches one of
    ``allow_pattern`` (None: any) and none of ``ignore_pattern``. Every key is checked
    before anything is written: one that would leave ``dst`` raises ValueError."""
    tensorstream.pull(model_path, dst, include=allow_pattern, exclude=ignore_pattern,
                      match="key", s3_credentials=credentials)


def s3_glob(path: str, allow_pattern: Optional[List[str]] = None,
            s3_credentials: Optional[S3Credentials] = None) -> List[str]:
    return glob(path, allow_pattern, s3_credentials)


def gcs_glob(path: str, allow_pattern: Optional[List[str]] = None) -> List[str]:
    return glob(path, allow_pattern)


def azure_glob(path: str, allow_pattern: Optional[List[str]] = None) -> List[str]:
    return glob(path, allow_pattern)


def s3_pull_files(model_path: str, dst: str, allow_pattern: Optional[List[str]] = None,
                  ignore_pattern: Optional[List[str]] = None,
                  s3_credentials: Optional[S3Credentials] = None) -> None:
    pull_files(model_path, dst, allow_pattern, ignore_pattern, s3_credentials)


def gcs_pull_files(model_path: str, dst: str, allow_pattern: Optional[List[str]] = None,
                   ignore_pattern: Optional[List[str]] = None,
                   s3_credentials: Optional[S3Credentials] = None) -> None:
    pull_files(model_path, dst, allow_pattern, ignore_pattern)


def azure_pull_files(model_path: str, dst: str, allow_pattern: Optional[List[str]] = None,
                     ignore_pattern: Optional[List[str]] = None) -> None:
    pull_files(model_path, dst, allow_pattern, ignore_pattern)
