"""The native Python API: stream(), load(), inspect()."""
from __future__ import annotations

import os
from typing import Iterable, Iterator, Mapping, NamedTuple, Optional, Union

from ._errors import NotFoundError, UnavailableError
from ._stream import S3Credentials, Stream

PathLike = Union[str, "os.PathLike[str]"]
Paths = Union[PathLike, Iterable[PathLike]]


def _as_list(paths: Paths) -> list:
    if isinstance(paths, (str, bytes, os.PathLike)):
        return [paths]
    return list(paths)


def resolve_device(device) -> str:
    """Checks a device ("cpu", "cuda", "cuda:N" or a torch.device) and returns it as a
    string: "cpu" or "cuda:N" ("cuda" is torch's current device).

    Called before any read: CUDA devices need torch with a usable CUDA, otherwise
    UnavailableError.
    """
    text = "cpu" if device is None else str(device)
    if text == "cpu":
        return text
    kind, _, number = text.partition(":")
    if kind != "cuda" or (number and not number.isdigit()):
        raise ValueError(f"device {text!r} is not supported: use 'cpu', 'cuda' or 'cuda:N'")
    try:
        import torch
    except ImportError:
        raise UnavailableError(f"device {text!r} needs torch, which is not installed") from None
    if not torch.cuda.is_available():
        raise UnavailableError(f"device {text!r} requested but CUDA is not available "
                               "(torch.cuda.is_available() is False)")
    if number and int(number) >= torch.cuda.device_count():
        raise UnavailableError(f"device {text!r} does not exist: "
                               f"{torch.cuda.device_count()} CUDA device(s)")
    return text if number else f"cuda:{torch.cuda.current_device()}"


def resolve_framework(framework: Optional[str]) -> str:
    """"pt" (torch) or "np" (numpy); None picks torch when it is importable."""
    if framework is None:
        try:
            import torch  # noqa: F401

            return "pt"
        except ImportError:
            return "np"
    aliases = {"pt": "pt", "torch": "pt", "np": "np", "numpy": "np"}
    if framework not in aliases:
        raise ValueError(f"framework {framework!r} is not one of 'pt', 'torch', 'np', 'numpy'")
    return aliases[framework]


def _select(stream: Stream, uris: list, infos: list, wanted: set) -> None:
    found = set()
    for index, file_infos in enumerate(infos):
        in_file = [t.name for t in file_infos if t.name in wanted]
        found.update(in_file)
        stream.select(index, in_file)
    missing = sorted(wanted - found)
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise NotFoundError(f"{len(missing)} tensor name(s) not found in "
                            f"{', '.join(map(str, uris))}: {shown}")


def stream(paths: Paths, *, names: Optional[Iterable[str]] = None, device="cpu",
           framework: Optional[str] = None, progress: bool = False,
           concurrency: Optional[int] = None, chunk_bytes: Optional[int] = None,
           memory_limit: Optional[int] = None, direct_io: Optional[bool] = None,
           host_memory: Optional[str] = None,
           s3_credentials: Optional[S3Credentials] = None,
           storage: Optional[Mapping[str, Optional[str]]] = None,
           device_memory_limit: Optional[int] = None) -> Iterator[tuple]:
    """Streams the tensors of SafeTensors files; yields ``(name, tensor)`` in completion order.

    Args:
        paths: one path or URI (``s3://``...), or a list of them.
        names: only these tensors are read (every name must exist in some file).
        device: "cpu", "cuda" or "cuda:N". CUDA is checked before any read; the library
            then streams every file in one pass through pinned staging straight into
            device memory it allocates as the bytes are about to arrive, which becomes
            the tensors (no copy; freed when the tensor is).
        device_memory_limit: with a CUDA device, the device memory allocated ahead of the
            consumer (-1, the default: max(1 GiB, the largest tensor)); the GPU holds the
            tensors the caller keeps plus at most about twice this much.
        framework: "pt" for torch tensors, "np" for numpy arrays (dtype rules in
            tensorstream._dtypes); None: torch when installed, else numpy.
        progress: show a tqdm bar of bytes when tqdm is installed (no bar otherwise).
        concurrency, chunk_bytes, memory_limit, direct_io: override the environment
            (RUNAI_STREAMER_CONCURRENCY, RUNAI_STREAMER_CHUNK_BYTESIZE,
            RUNAI_STREAMER_MEMORY_LIMIT, TENSORSTREAM_DIRECT_IO), which is read now.
        host_memory: "mapped" (the default, TENSORSTREAM_MMAP=1): without a memory limit,
            tensors of local files are views of a copy-on-write mapping of the file, as
            with safetensors: no copy, but rewriting or truncating the file on disk later
            changes them or makes touching them fault (SIGBUS). "private": bytes of the
            library's own, immune to the file (copied once, in parallel by the readers).
        s3_credentials: explicit S3 credentials (the drop-in's S3Credentials).
        storage: backend settings by key, for any store: "s3.endpoint", "gcs.endpoint",
            "gcs.credential_file", "gcs.anonymous"... (the C API's tensorstream_options_set
            keys); they win over the environment.

    Headers are parsed, and bad files or names raise, when this function is called; read
    errors raise from the iteration. Each tensor owns its memory (no reuse), so it may be
    kept; the memory limit bounds the bytes read ahead of the consumer.
    """
    opened = _open(paths, names, device, framework,
                   dict(concurrency=concurrency, chunk_bytes=chunk_bytes,
                        memory_limit=memory_limit, direct_io=direct_io,
                        host_memory=host_memory, s3_credentials=s3_credentials,
                        storage=storage, device_memory_limit=device_memory_limit))
    return _iterate(opened, progress)


def load(paths: Paths, *, names: Optional[Iterable[str]] = None, device="cpu",
         framework: Optional[str] = None, progress: bool = False, **options) -> dict:
    """Loads tensors into a dict ``name -> tensor``; same arguments as :func:`stream`.

    A name present in two files raises ValueError before any tensor is read (a dict
    cannot hold both)."""
    opened = _open(paths, names, device, framework, options)
    seen = {}
    for uri, info in opened.selected:
        if info.name in seen:
            opened.handle.close()
            raise ValueError(f"tensor '{info.name}' is in both {seen[info.name]} and {uri}")
        seen[info.name] = uri
    return dict(_iterate(opened, progress))


class _Opened(NamedTuple):
    handle: Stream  # started, on the device
    selected: list  # (uri, TensorInfo) of every tensor to be delivered
    framework: str  # "pt" or "np"
    device: str


def _open(paths: Paths, names, device, framework, options: dict) -> _Opened:
    """Checks the arguments, parses every header, selects, starts: one stream for every
    file, so that the readers never wait at a file boundary."""
    target = resolve_device(device)
    framework = resolve_framework(framework)
    if target != "cpu" and framework != "pt":
        raise ValueError(f"device {target!r} needs framework 'pt'")
    uris = _as_list(paths)
    handle = Stream(device=target, **options)
    try:
        for uri in uris:
            handle.add_file(uri)
        infos = [handle.tensors(i) for i in range(len(uris))]
        selected = [(uri, info) for uri, file_infos in zip(uris, infos) for info in file_infos]
        if names is not None:
            wanted = set(names)
            _select(handle, uris, infos, wanted)
            selected = [(uri, info) for uri, info in selected if info.name in wanted]
        handle.start()
    except BaseException:
        handle.close()
        raise
    return _Opened(handle, selected, framework, target)


def _progress_bar(total: Optional[int]):
    if total is None:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="B", unit_scale=True, desc="tensorstream")


def _iterate(opened: _Opened, progress: bool):
    bar = _progress_bar(sum(info.nbytes for _, info in opened.selected) if progress else None)
    try:
        if bar is None and opened.device == "cpu":
            yield from _host_items(opened, names_only=True)
            return
        for name, value, nbytes in (_host_items(opened) if opened.device == "cpu"
                                    else _device_items(opened)):
            if bar is not None:
                bar.update(nbytes)
            yield name, value
    finally:
        opened.handle.close()
        if bar is not None:
            bar.close()


def _host_items(opened: _Opened, names_only: bool = False):
    """(name, value, nbytes) of every tensor, or (name, value) with ``names_only``."""
    handle = opened.handle
    items = handle.torch_items() if opened.framework == "pt" else handle.numpy_items()
    infos = [handle.tensors(i) for i in range(handle.file_count())]
    if names_only:
        names = [[info.name for info in file_infos] for file_infos in infos]
        for file_index, index, value in items:
            yield names[file_index][index], value
        return
    for file_index, index, value in items:
        info = infos[file_index][index]
        yield info.name, value, info.nbytes


def _device_items(opened: _Opened):
    """(name, tensor, nbytes) of every tensor, on the device."""
    handle = opened.handle
    for file_index, index, tensor in handle.device_items():
        info = handle.tensors(file_index)[index]
        yield info.name, tensor, info.nbytes


def inspect(path: PathLike, *, s3_credentials: Optional[S3Credentials] = None,
            storage: Optional[Mapping[str, Optional[str]]] = None) -> list:
    """The tensors of one SafeTensors file as a list of TensorInfo, sorted by offset
    (reads only the header)."""
    with Stream(s3_credentials=s3_credentials, storage=storage) as handle:
        return handle.tensors(handle.add_file(path))
