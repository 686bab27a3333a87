"""list_safetensors, pull_files, ObjectStorageModel.

Object-store prefixes (s3://; gs:// and az:// are recognised but the library cannot list
them yet, which raises InvalidArgumentError naming the scheme) are listed and downloaded
by the library; local directories are listed with the file system. As in
runai-model-streamer, patterns are fnmatch patterns matched against the whole object key
(without the bucket; '*' also matches '/'), and pull_files of a local path raises
NotImplementedError.
"""
from __future__ import annotations

import fcntl
import fnmatch
import glob
import os
import shutil
from typing import List, Optional

import tensorstream
from tensorstream import S3Credentials
from tensorstream._transfer import check_paths, matches

OBJECT_STORE_SCHEMES = ("s3://", "gs://", "az://")
SAFETENSORS_PATTERN = "*.safetensors"


def is_object_store_path(path: str) -> bool:
    return str(path).startswith(OBJECT_STORE_SCHEMES)


def _key(uri: str) -> str:
    """The object key of "scheme://bucket/key"."""
    return uri.split("://", 1)[1].partition("/")[2]


def list_safetensors(path: str, s3_credentials: Optional[S3Credentials] = None) -> List[str]:
    """The ``*.safetensors`` files directly in ``path`` (not recursive), sorted: full URIs
    (``s3://bucket/dir/x.safetensors``) for an object-store prefix, paths for a local
    directory."""
    if is_object_store_path(path):
        entries = tensorstream.list(path, s3_credentials=s3_credentials)
        return sorted(e.uri for e in entries if not e.is_directory
                      and fnmatch.fnmatchcase(_key(e.uri), SAFETENSORS_PATTERN))
    return sorted(glob.glob(os.path.join(glob.escape(path), SAFETENSORS_PATTERN)))


def pull_files(model_path: str, dst: str, allow_pattern: Optional[List[str]] = None,
               ignore_pattern: Optional[List[str]] = None,
               s3_credentials: Optional[S3Credentials] = None) -> None:
    """Downloads every object under an object-store prefix into ``dst``, keeping the paths
    below the prefix (recursive). An object is pulled when its key matches one of
    ``allow_pattern`` (None: every key) and none of ``ignore_pattern``.

    Nothing is ever written outside ``dst``: a key whose path below the prefix is absolute
    or has "."/".." segments raises InvalidArgumentError (a ValueError) before anything is
    written. Local paths raise NotImplementedError, as in runai-model-streamer."""
    if not is_object_store_path(model_path):
        raise NotImplementedError("pull files is not implemented for file system paths")
    entries = [entry for entry in
               tensorstream.list(model_path, recursive=True, s3_credentials=s3_credentials)
               if matches(_key(entry.uri), allow_pattern, ignore_pattern)]
    check_paths(entry.path for entry in entries)
    for entry in entries:
        tensorstream.download(entry.uri, dst, entry.path, s3_credentials=s3_credentials)


class ObjectStorageModel:
    """Downloads an object-store model into ``dst`` once per host, whatever the number of
    processes doing the same.

    Entering takes a lock on ``dst + ".lock"`` (fcntl.flock: processes of one host). If
    ``dst`` holds the completion marker, pull_files does nothing. Otherwise ``dst`` is
    emptied, the caller pulls, and a clean exit writes the marker; an exception leaves
    no marker, so the next process downloads again. The lock is held until exit (shared
    once the download is known complete).

        with ObjectStorageModel(model_path="s3://bucket/model", dst=local_dir) as model:
            model.pull_files(allow_pattern=["*.json"])
    """

    COMPLETE_MARKER = ".runai_complete"

    def __init__(self, model_path: str, dst: str,
                 s3_credentials: Optional[S3Credentials] = None) -> None:
        if not is_object_store_path(model_path):
            raise ValueError(f"model_path {model_path!r} is not an object-store URI "
                             f"({', '.join(OBJECT_STORE_SCHEMES)})")
        self.dir = dst.rstrip("/") or "/"
        self._model_path = model_path.rstrip("/") + "/"
        self._s3_credentials = s3_credentials
        self._marker = os.path.join(self.dir, self.COMPLETE_MARKER)
        # The lock file sits next to dst: create dst's parent (the reference requires it).
        os.makedirs(os.path.dirname(self.dir) or ".", exist_ok=True)
        self._lock = open(self.dir + ".lock", "a")
        try:
            # Exclusive from the start: a shared lock upgraded later can deadlock two
            # processes that both wait for the other to let go.
            fcntl.flock(self._lock, fcntl.LOCK_EX)
            self._complete = os.path.exists(self._marker)
            if self._complete:  # nothing to write: let the other readers in
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
        if not self._complete:
            pull_files(self._model_path, self.dir, allow_pattern, ignore_pattern,
                       self._s3_credentials)

    def _unlock(self) -> None:
        if not self._lock.closed:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()

    def __enter__(self) -> "ObjectStorageModel":
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        try:
            if exc_type is None and not self._complete:
                if not any(name != self.COMPLETE_MARKER for name in os.listdir(self.dir)):
                    raise RuntimeError(f"nothing was downloaded from {self._model_path} to "
                                       f"{self.dir}: check the model path")
                with open(self._marker, "w"):
                    pass
                self._complete = True
        finally:
            self._unlock()

    def __del__(self) -> None:
        lock = getattr(self, "_lock", None)
        if lock is not None:
            self._unlock()
