"""Listing and downloading: list(), download(), pull() over the C API.

Sources are local directories or object-store prefixes (``s3://bucket/dir``). Downloads go
through the streaming pipeline (concurrency, retries with resume, memory limit) and land
under their final name only once complete. Nothing is ever written outside the
destination: a relative path that is absolute or has "."/".."/empty segments (object keys
are untrusted) raises InvalidArgumentError before anything of that file is written.
"""
from __future__ import annotations

import fnmatch
import os
from ctypes import byref, c_uint64
from typing import Callable, Iterable, List, Mapping, NamedTuple, Optional

from . import _capi
from ._api import _progress_bar
from ._stream import S3Credentials, apply_options, encode_path


class ListEntry(NamedTuple):
    """One entry of a listing.

    ``uri`` is what streaming and download accept (``s3://bucket/dir/a.bin`` or a local
    path); ``path`` is the '/'-separated path below the listed directory (for object
    stores the key minus the prefix, untrusted: it may hold ".."); ``size`` in bytes (0 for
    directories); ``is_directory`` only in non-recursive listings (subdirectories, common
    prefixes, whose ``uri`` and ``path`` end with "/" for every backend).
    """

    uri: str
    path: str
    size: int
    is_directory: bool


class _Options:
    """A ``tensorstream_options`` handle for one call: defaults from the environment,
    overridden by the keyword arguments that are not None."""

    def __init__(self, **overrides) -> None:
        self._lib = _capi.lib()
        self.handle = _capi.OptionsP()
        _capi.check(self._lib.tensorstream_options_create(byref(self.handle)))
        try:
            apply_options(self.handle, **overrides)
        except BaseException:
            self._lib.tensorstream_options_destroy(self.handle)
            raise

    def __enter__(self) -> "_Options":
        return self

    def __exit__(self, *exc) -> None:
        self._lib.tensorstream_options_destroy(self.handle)


def list(uri, recursive: bool = False,  # noqa: A001 (tensorstream.list is the public name)
         s3_credentials: Optional[S3Credentials] = None,
         storage: Optional[Mapping[str, Optional[str]]] = None) -> List[ListEntry]:
    """The files under a local directory or object-store prefix, sorted by URI.

    Not recursive: files and subdirectories (``is_directory``) directly under ``uri``.
    Recursive: every file below, files only. Raises NotFoundError (no such directory or
    bucket), InvalidArgumentError (not a directory, a scheme that cannot be listed),
    PermissionDeniedError, UnavailableError.
    """
    lib = _capi.lib()
    listing = _capi.ListingP()
    with _Options(concurrency=None, chunk_bytes=None, memory_limit=None,
                  s3_credentials=s3_credentials, storage=storage) as options:
        _capi.check(lib.tensorstream_list(options.handle, encode_path(uri), int(bool(recursive)),
                                          byref(listing)))
    try:
        return [ListEntry(os.fsdecode(lib.tensorstream_listing_uri(listing, i)),
                          os.fsdecode(lib.tensorstream_listing_relative(listing, i)),
                          lib.tensorstream_listing_size(listing, i),
                          lib.tensorstream_listing_is_directory(listing, i) != 0)
                for i in range(lib.tensorstream_listing_count(listing))]
    finally:
        lib.tensorstream_listing_destroy(listing)


def download(uri, dst_dir, path: str, *, progress: Optional[Callable[[int], None]] = None,
             s3_credentials: Optional[S3Credentials] = None,
             storage: Optional[Mapping[str, Optional[str]]] = None,
             concurrency: Optional[int] = None, chunk_bytes: Optional[int] = None,
             memory_limit: Optional[int] = None) -> int:
    """Downloads ``uri`` to ``dst_dir``/``path`` (parent directories created) and returns
    the bytes written. ``path`` must stay inside ``dst_dir`` (InvalidArgumentError
    otherwise, before anything is written). ``progress(bytes_done)`` is called on this
    thread as chunks land; an exception it raises is raised once the file is complete.
    Options as in :func:`tensorstream.stream`."""
    with _Options(concurrency=concurrency, chunk_bytes=chunk_bytes, memory_limit=memory_limit,
                  s3_credentials=s3_credentials, storage=storage) as options:
        return _download(options, uri, dst_dir, path, progress)


def _download(options: _Options, uri, dst_dir, path: str, progress) -> int:
    # ctypes drops exceptions raised in a callback: keep the first one (Ctrl-C included)
    # and raise it once the call returns. The C API cannot stop a download from its
    # callback, so the file is completed first.
    raised = []

    def report(done: int, _user) -> None:
        if not raised:
            try:
                progress(done)
            except BaseException as e:  # noqa: B036 (re-raised below)
                raised.append(e)

    # The callback object must outlive the call; ProgressFn() is a NULL function pointer.
    callback = _capi.ProgressFn(report) if progress else _capi.ProgressFn()
    written = c_uint64()
    _capi.check(_capi.lib().tensorstream_download(
        options.handle, encode_path(uri), encode_path(dst_dir), encode_path(path), callback,
        None, byref(written)))
    if raised:
        raise raised[0]
    return written.value


def matches(path: str, include: Optional[Iterable[str]],
            exclude: Optional[Iterable[str]]) -> bool:
    """Whether ``path`` passes the filters: it matches one of ``include`` (None: any path)
    and none of ``exclude``. fnmatch patterns, where '*' also matches '/'."""
    if include is not None and not any(fnmatch.fnmatchcase(path, p) for p in include):
        return False
    return not any(fnmatch.fnmatchcase(path, p) for p in exclude or ())


def check_paths(paths: Iterable[str]) -> None:
    """Raises InvalidArgumentError for the first path that would leave a destination
    directory (absolute, "."/".."/empty segments, backslash, NUL)."""
    lib = _capi.lib()
    for path in paths:
        _capi.check(lib.tensorstream_check_relative_path(encode_path(path)))


def pull(uri, dst, *, include: Optional[Iterable[str]] = None,
         exclude: Optional[Iterable[str]] = None, match: str = "path", progress: bool = False,
         s3_credentials: Optional[S3Credentials] = None,
         storage: Optional[Mapping[str, Optional[str]]] = None,
         concurrency: Optional[int] = None, chunk_bytes: Optional[int] = None,
         memory_limit: Optional[int] = None) -> List[str]:
    """Downloads every file below ``uri`` (recursive) that passes ``include``/``exclude``
    (see :func:`matches`) into ``dst``, keeping relative paths; returns those paths.
    ``match``: what the patterns see, "path" (the path below ``uri``) or "key" (an object's
    whole key, as runai-model-streamer matches). Directory markers (keys ending in "/")
    are skipped. ``progress``: a tqdm bar of bytes when tqdm is installed.

    Files are downloaded one after the other, each by the pipeline's concurrent readers.
    A path that would leave ``dst`` raises InvalidArgumentError before anything is written.
    """
    if match not in ("path", "key"):
        raise ValueError(f"match must be 'path' or 'key', not {match!r}")
    include = None if include is None else [*include]
    exclude = [*(exclude or ())]

    def subject(entry: ListEntry) -> str:
        if match == "path" or "://" not in entry.uri:
            return entry.path
        return entry.uri.split("://", 1)[1].partition("/")[2]

    entries = [e for e in list(uri, recursive=True, s3_credentials=s3_credentials,
                                 storage=storage)
               if not e.path.endswith("/") and matches(subject(e), include, exclude)]
    check_paths(e.path for e in entries)
    bar = _progress_bar(sum(e.size for e in entries) if progress else None)
    try:
        with _Options(concurrency=concurrency, chunk_bytes=chunk_bytes,
                      memory_limit=memory_limit, s3_credentials=s3_credentials,
                      storage=storage) as options:
            for entry in entries:
                _download(options, entry.uri, dst, entry.path, _advance(bar))
    finally:
        if bar is not None:
            bar.close()
    return [e.path for e in entries]


def _advance(bar) -> Optional[Callable[[int], None]]:
    """A progress callback for one file that moves ``bar`` by the bytes newly written."""
    if bar is None:
        return None
    last = 0

    def report(done: int) -> None:
        nonlocal last
        bar.update(done - last)
        last = done

    return report
