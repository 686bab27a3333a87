"""Distributed loading: the ranks of a torch.distributed group share the reads of one load
and broadcast what they read, so that each byte leaves storage once per host (or once for
the whole job with RUNAI_STREAMER_DIST_GLOBAL=1), as runai-model-streamer 0.17.1 does.

Whether a load is shared (``decide``) follows the reference:

- ``RUNAI_STREAMER_DIST``: "0" never, "1" whenever the group allows it (gloo included),
  "auto" (the default) only with NCCL; any other value is an error naming the variable;
- torch.distributed must be initialised with more than one rank;
- the backend must suit the device (NCCL moves device tensors, gloo host tensors);
- with NCCL, every rank's GPU must have room for two staging buffers of the largest
  range; if one has not, every rank reads the whole load itself (a WARNING says so).

How a shared load runs (``SharedLoad``), on every rank of the world:

1. Agreement, one all_gather over a gloo group made for it: each rank sends its host
   name, the fingerprint of the load's layout (which ranges, at which offsets), the ranges
   it wants, whether its device has room for the staging buffers, and the error it met
   while preparing (a header it could not read...). Any error makes every rank raise
   DistributedError naming the rank, its host and the cause (on the rank that met it, the
   error is also of its original class); so does a layout that differs between ranks of
   a group.
2. Groups: the ranks of each host (or all ranks, RUNAI_STREAMER_DIST_GLOBAL=1) form the
   group that shares a load; every group reads the union of what its ranks want, split
   by ``_partition.partition`` (balanced bytes, large ranges split across ranks).
3. Each rank streams its share through the tensorstream pipeline (its memory limit and
   concurrency apply per rank); a reader thread hands the pieces over as they complete,
   so reading goes on while the rank broadcasts.
4. Rounds: each rank packs the pieces it has read so far into its send buffer (at most
   RUNAI_STREAMER_DIST_BUFFER_MIN_BYTESIZE, or the largest piece, at offsets aligned to
   RUNAI_STREAMER_CUDA_ALIGNMENT), then each rank in turn broadcasts a header (the pieces,
   or a failure and its message) and the bytes. Every rank copies the pieces it wants into
   tensors of its own and yields each range once it is whole. A rank whose reads fail, or
   that waits more than half the timeout for its storage, sends its failure in its next
   header: all ranks finish the round and raise the same DistributedError.
5. Every collective runs on groups made with RUNAI_STREAMER_DIST_TIMEOUT (600 s): a rank
   that died or hangs makes the others raise DistributedError within it, naming the rank
   they were waiting for. No collective is left waiting forever.

Every rank must consume the whole load (the rounds are collectives). Host memory per rank:
the pipeline's memory limit, two staging buffers (send and receive), and the tensors it
yields; device memory with NCCL: the two staging buffers and the tensors. With NCCL a
rank's own pieces go from the pipeline's host memory into the device staging buffer (one
host-to-device copy each); streaming them straight into device memory is not done yet.
Only the gloo path runs in CI (no GPU there).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import socket
import threading
import time
from datetime import timedelta
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from ._errors import DistributedError, InvalidArgumentError
from ._partition import Piece, partition, share_bytes

# The drop-in's logger, where the reference writes its distributed INFO lines (vLLM users
# see them there); shared loads are only started by the drop-in.
logger = logging.getLogger("runai_model_streamer.distributed_streamer")

DIST_ENV = "RUNAI_STREAMER_DIST"
GLOBAL_ENV = "RUNAI_STREAMER_DIST_GLOBAL"
TIMEOUT_ENV = "RUNAI_STREAMER_DIST_TIMEOUT"
BUFFER_ENV = "RUNAI_STREAMER_DIST_BUFFER_MIN_BYTESIZE"
ALIGNMENT_ENV = "RUNAI_STREAMER_CUDA_ALIGNMENT"

# A round's header: row 0 is (pieces, failed, message bytes, 0); row i is piece i as
# (range index, start in the range, length, offset in the staging buffer).
_MAX_PIECES_PER_ROUND = 1024
_HEADER_COLUMNS = 4
# How long a rank with nothing read yet waits before it sends an empty round.
_FIRST_PIECE_WAIT = 0.05


class Settings(NamedTuple):
    global_group: bool     # RUNAI_STREAMER_DIST_GLOBAL=1: one group of all ranks
    timeout_seconds: int   # RUNAI_STREAMER_DIST_TIMEOUT, for every collective
    buffer_min_bytes: int  # RUNAI_STREAMER_DIST_BUFFER_MIN_BYTESIZE
    alignment: int         # RUNAI_STREAMER_CUDA_ALIGNMENT: pieces' offsets in the buffers


def _int_setting(name: str, default: int, low: int, high: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise InvalidArgumentError(f"{name}={text!r} is not an integer") from None
    if not low <= value <= high:
        raise InvalidArgumentError(f"{name}={value} is out of range: use {low} to {high}")
    return value


def read_settings() -> Settings:
    """The settings from the environment as it is now; InvalidArgumentError (a ValueError)
    naming the variable for a bad value."""
    return Settings(
        global_group=_int_setting(GLOBAL_ENV, 0, 0, 1) == 1,
        timeout_seconds=_int_setting(TIMEOUT_ENV, 600, 1, 7 * 24 * 3600),
        buffer_min_bytes=_int_setting(BUFFER_ENV, 1 << 30, 1, 1 << 40),
        alignment=_int_setting(ALIGNMENT_ENV, 512, 0, 1 << 20),
    )


class Decision(NamedTuple):
    distributed: bool
    reason: str  # why not, or what was decided, for an INFO line


def decide(requested: bool, device: str) -> Decision:
    """Whether a load on ``device`` ("cpu", "cuda", "cuda:N", ...) is shared by the ranks.
    The same on every rank given the same environment (the device's free memory, which
    differs between ranks, is checked later, in the agreement)."""
    if not requested:
        return Decision(False, "not requested")
    mode = os.environ.get(DIST_ENV, "auto")
    if mode not in ("0", "1", "auto"):
        raise ValueError(f"Invalid value for {DIST_ENV}: {mode!r} (use 0, 1 or auto)")
    if mode == "0":
        return Decision(False, f"{DIST_ENV}=0")
    try:
        import torch.distributed as dist
    except ImportError:
        return Decision(False, "torch is not installed")
    if not dist.is_available() or not dist.is_initialized():
        return Decision(False, "Torch distributed is not initialized")
    if dist.get_world_size() < 2:
        return Decision(False, "the process group has one rank")
    backend = dist.get_backend()
    on_host = device == "cpu"
    if backend == "nccl" and on_host:
        return Decision(False, f"backend {backend} is not supported for the CPU device")
    if backend == "gloo" and not on_host:
        return Decision(False, f"backend {backend} is not supported for device {device}")
    if mode == "auto" and backend != "nccl":
        return Decision(False, f"backend {backend} is used only with {DIST_ENV}=1")
    return Decision(True, f"{dist.get_world_size()} ranks on backend {backend}")


class LoadRange(NamedTuple):
    """One range of a load: ``size`` bytes at ``offset`` of ``path`` (a path or URI)."""

    path: str
    offset: int
    size: int


def layout_fingerprint(description) -> str:
    """A digest of what every rank of a group must agree on (JSON-serialisable input)."""
    text = json.dumps(description, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _failure_message(failures: Sequence[Tuple[int, str, str]], world: int) -> str:
    parts = [f"rank {rank} of {world} (host {host}): {cause}" for rank, host, cause in failures]
    return "distributed load failed: " + "; ".join(parts)


def _as_distributed(error: Optional[BaseException], message: str) -> DistributedError:
    """DistributedError with ``message``; on the rank whose ``error`` it is, an instance of
    error's class too, so that ``except ValueError`` still catches a bad file there."""
    if error is None or isinstance(error, DistributedError) or not isinstance(error, Exception):
        return DistributedError(message)
    try:
        both = type(type(error).__name__, (DistributedError, type(error)), {})
        return both(message)
    except TypeError:  # a class that cannot be combined, or built from a message
        return DistributedError(message)


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if isinstance(error, Exception) and str(error) else f"{type(error).__name__}: {text}"


_END = object()  # the reader thread's last item


class SharedLoad:
    """One load shared by the ranks of a group: created on every rank of the world with the
    same ``ranges`` (the agreement checks it), then ``items()`` yields
    ``(range index, uint8 tensor)`` for every range this rank wants, each once, in
    completion order, each tensor its own (nothing reuses its memory).

    ``wanted``: the indices of the ranges this rank wants (None: all of them); ranks may
    want different ranges. ``layout``: ``layout_fingerprint`` of what defines the ranges
    (not the paths, so hosts may mount a model in different places). ``device``: where
    the tensors go ("cpu" with gloo, a CUDA device with NCCL). ``stream_options``:
    keyword arguments of ``tensorstream.Stream`` for this rank's reads.
    ``prepare_error``: what went wrong on this rank before the load (the others are told
    and everyone raises). Driven by one thread; ``close()`` releases the groups.
    """

    def __init__(self, ranges: Sequence[LoadRange], wanted: Optional[Sequence[int]], *,
                 layout: str, device: str, stream_options: dict,
                 prepare_error: Optional[BaseException] = None,
                 settings: Optional[Settings] = None) -> None:
        import torch
        import torch.distributed as dist

        self._torch, self._dist = torch, dist
        self._ranges = list(ranges)
        self._device = torch.device(device)
        self._settings = settings or read_settings()
        self._timeout = timedelta(seconds=self._settings.timeout_seconds)
        self._world = dist.get_world_size()
        self._rank = dist.get_rank()
        self._process_groups: list = []
        self._stream = None
        self._reader: Optional[threading.Thread] = None
        self._queue: "queue.Queue" = queue.Queue()
        self._failure: Optional[BaseException] = None  # this rank's, sent in the next round
        self._leftover = None  # a piece read that did not fit in the last round
        self._last_piece = time.monotonic()  # when this rank last got a piece (or started)
        self._stall_limit = max(1.0, self._settings.timeout_seconds / 2)
        self._message = b""  # this rank's failure, as sent
        try:
            self._agree(wanted, layout, prepare_error)
            self._plan(wanted)
            self._start_reading(stream_options)
        except BaseException:
            self.close()
            raise

    # -- setup -----------------------------------------------------------------------

    def _agree(self, wanted, layout: str, prepare_error: Optional[BaseException]) -> None:
        """Step 1 and 2: everyone's host, layout, wants and errors; the groups."""
        dist = self._dist
        control = self._new_group(list(range(self._world)), backend="gloo")
        mine = {"host": socket.gethostname(), "layout": layout, "room": self._room(),
                "error": None if prepare_error is None else _describe(prepare_error),
                "wanted": None if wanted is None else sorted(set(wanted))}
        everyone: List[Optional[dict]] = [None] * self._world
        self._collective(lambda: dist.all_gather_object(everyone, mine, group=control),
                         "exchanging the load's plan with every rank")
        self._everyone = everyone
        failures = [(r, e["host"], e["error"]) for r, e in enumerate(everyone) if e["error"]]
        if failures:
            raise _as_distributed(prepare_error,
                                  _failure_message(failures, self._world)) from prepare_error
        if not all(entry["room"] for entry in everyone):
            short = [r for r, entry in enumerate(everyone) if not entry["room"]]
            logger.warning("[RunAI Streamer][Distributed] Not enough free device memory on "
                           "rank(s) %s for two staging buffers of the largest range - fallback "
                           "to non distributed streaming", short)
            groups = [[rank] for rank in range(self._world)]
        elif self._settings.global_group:
            groups = [list(range(self._world))]
        else:
            hosts: Dict[str, List[int]] = {}
            for rank, entry in enumerate(everyone):
                hosts.setdefault(entry["host"], []).append(rank)
            groups = list(hosts.values())  # ordered by their lowest rank, alike everywhere
        for group in groups:
            differ = [r for r in group if everyone[r]["layout"] != everyone[group[0]]["layout"]]
            if differ:
                raise DistributedError(
                    f"distributed load failed: rank(s) {differ} of {self._world} load other "
                    f"files, tensors or ranges than rank {group[0]} of their group "
                    f"{group}; every rank of a group must load the same model")
        # Every rank creates every group, in the same order (new_group is collective).
        for group in groups:
            created = self._new_group(group) if len(group) > 1 else None
            if self._rank in group:
                self._members, self._group = group, created
        self._position = self._members.index(self._rank)

    def _room(self) -> bool:
        """Whether this rank's device can hold two staging buffers of the largest range."""
        if self._device.type != "cuda":
            return True
        largest = max((r.size for r in self._ranges), default=0)
        return self._torch.cuda.mem_get_info(self._device)[0] >= 2 * largest

    def _plan(self, wanted) -> None:
        """Step 2: the union of the group's wants, partitioned; this rank's outputs."""
        wants = [self._everyone[r]["wanted"] for r in self._members]
        union = None if any(w is None for w in wants) else set().union(*map(set, wants))
        self._mine = None if wanted is None else set(wanted)
        order = [(i, r.size) for i, r in enumerate(self._ranges)
                 if union is None or i in union]
        self._shares = partition(order, len(self._members))
        self._remaining: Dict[int, int] = {}
        self._outputs: Dict[int, object] = {}
        self._empty = [i for i, size in order if size == 0 and self._wants(i)]
        alignment = max(1, self._settings.alignment)
        largest = max((p.length for share in self._shares for p in share), default=0)
        capacity = max(self._settings.buffer_min_bytes, largest + alignment)
        padded = [sum(p.length + alignment for p in share) for share in self._shares]
        others = [b for i, b in enumerate(padded) if i != self._position]
        self._send_capacity = min(capacity, padded[self._position])
        self._receive_capacity = min(capacity, max(others, default=0))
        self._alignment = alignment
        if self._rank == self._members[0]:
            sizes = share_bytes(self._shares)
            logger.info("[RunAI Streamer][Distributed] Using distributed streaming between %d "
                        "processes (ranks %s): %d bytes to read, per rank %s",
                        len(self._members), self._members, sum(sizes), sizes)

    def _wants(self, range_index: int) -> bool:
        return self._mine is None or range_index in self._mine

    def _start_reading(self, stream_options: dict) -> None:
        """Step 3: this rank's share through the pipeline, drained by a reader thread. An
        error here is this rank's failure, sent to the others in the first round."""
        share = self._shares[self._position]
        self._to_take = len(share)
        if not share:
            return
        from ._stream import Stream

        by_path: Dict[str, List[Piece]] = {}
        for piece in share:
            by_path.setdefault(self._ranges[piece.range_index].path, []).append(piece)
        pieces_of_file: List[List[Piece]] = []
        try:
            stream = self._stream = Stream(host_memory="private", **stream_options)
            for path, pieces in by_path.items():
                stream.add_range_list(path,
                                      [self._ranges[p.range_index].offset + p.start for p in pieces],
                                      [p.length for p in pieces])
                pieces_of_file.append(pieces)
            stream.start()
        except Exception as error:  # noqa: BLE001 - reported to every rank in round one
            self._failure = error
            return
        self._reader = threading.Thread(target=self._read, args=(stream, pieces_of_file),
                                        name="tensorstream-distributed-reader", daemon=True)
        self._reader.start()
        self._last_piece = time.monotonic()

    def _read(self, stream, pieces_of_file: List[List[Piece]]) -> None:
        try:
            for file_index, tensor_index, tensor in stream.torch_items():
                position = int(stream.tensors(file_index)[tensor_index].name)
                self._queue.put((pieces_of_file[file_index][position], tensor))
            self._queue.put(_END)
        except BaseException as error:  # noqa: BLE001 - handed to the broadcasting thread
            self._queue.put(error)

    # -- rounds ----------------------------------------------------------------------

    def items(self) -> Iterator[Tuple[int, object]]:
        """Steps 4 and 5: ``(range index, uint8 tensor)`` for each wanted range, once."""
        torch = self._torch
        for index in self._empty:
            yield index, torch.empty(0, dtype=torch.uint8, device=self._device)
        pending = [len(share) for share in self._shares]
        header = torch.zeros((_MAX_PIECES_PER_ROUND + 1, _HEADER_COLUMNS), dtype=torch.int64,
                             device=self._device)
        send = self._buffer(self._send_capacity)
        receive = self._buffer(self._receive_capacity)
        while any(pending):
            entries, failure = self._fill(send) if pending[self._position] else ([], None)
            failures = []
            for position, source in enumerate(self._members):
                if not pending[position]:
                    continue
                if position == self._position:
                    self._write_header(header, entries, failure)
                self._broadcast(header, source, "the header of a round")
                count, failed, message_bytes = header[0, :3].tolist()
                if failed:
                    failures.append((source, self._everyone[source]["host"],
                                     self._receive_message(header, source, message_bytes)))
                    continue
                rows = header[1:count + 1].tolist()
                data = send if position == self._position else receive
                if rows:
                    used_by_source = rows[-1][3] + rows[-1][2]
                    self._broadcast(data[:used_by_source], source, f"{count} pieces")
                pending[position] -= count
                for range_index, start, length, offset in rows:
                    done = self._assemble(range_index, start, length, data[offset:offset + length])
                    if done is not None:
                        yield range_index, done
            if failures:
                raise _as_distributed(self._failure, _failure_message(failures, self._world)) \
                    from self._failure
        if self._group is not None:
            self._collective(lambda: self._dist.barrier(group=self._group),
                             "the barrier at the end of the load")

    def _fill(self, send) -> Tuple[list, Optional[str]]:
        """Packs the pieces this rank has read so far into ``send``: (header rows, failure).

        Takes what the reader thread has handed over, up to the buffer's capacity; waits
        only when nothing is there, and then at most _FIRST_PIECE_WAIT before sending an
        empty round, so that a rank whose storage is slower never holds back the others'
        broadcasts, and reading and broadcasting overlap. No piece for half the timeout is
        this rank's failure."""
        if self._failure is not None:
            return [], _describe(self._failure)
        entries: list = []
        used = 0
        while len(entries) < _MAX_PIECES_PER_ROUND and self._to_take:
            item, self._leftover = self._leftover, None
            if item is None:
                try:
                    item = self._queue.get(timeout=0 if entries else _FIRST_PIECE_WAIT)
                except queue.Empty:
                    stalled = time.monotonic() - self._last_piece
                    if not entries and stalled > self._stall_limit:
                        item = DistributedError(
                            f"no bytes from storage in {stalled:.0f} s (half of "
                            f"{TIMEOUT_ENV}={self._settings.timeout_seconds})")
                    else:
                        break
            if item is _END:
                item = DistributedError(f"the reads ended with {self._to_take} pieces missing")
            if isinstance(item, BaseException):
                self._failure = item
                return [], _describe(item)
            piece, tensor = item
            self._last_piece = time.monotonic()
            offset = self._aligned(used)
            if offset + piece.length > self._send_capacity:
                self._leftover = item  # first in the next round
                break
            send[offset:offset + piece.length].copy_(tensor.reshape(-1))
            entries.append((piece.range_index, piece.start, piece.length, offset))
            used = offset + piece.length
            self._to_take -= 1
        return entries, None

    def _aligned(self, offset: int) -> int:
        return -(-offset // self._alignment) * self._alignment

    def _write_header(self, header, entries: list, failure: Optional[str]) -> None:
        torch = self._torch
        encoded = failure.encode("utf-8", "replace")[:8192] if failure is not None else b""
        top = [len(entries), int(failure is not None), len(encoded), 0]
        rows = [top] + [list(e) for e in entries]
        header[:len(rows)].copy_(torch.tensor(rows, dtype=torch.int64))
        self._message = encoded

    def _receive_message(self, header, source: int, size: int) -> str:
        torch = self._torch
        if source == self._rank:
            text = torch.frombuffer(bytearray(self._message), dtype=torch.uint8) if size else None
        else:
            text = torch.empty(size, dtype=torch.uint8)
        if size:
            message = text.to(self._device)
            self._broadcast(message, source, "a failure's message")
            return bytes(message.cpu().tolist()).decode("utf-8", "replace")
        return "failed"

    def _assemble(self, range_index: int, start: int, length: int, data):
        """Copies a piece into its range's tensor; the tensor once the range is whole."""
        if not self._wants(range_index):
            return None
        size = self._ranges[range_index].size
        output = self._outputs.get(range_index)
        if output is None:
            output = self._torch.empty(size, dtype=self._torch.uint8, device=self._device)
            self._outputs[range_index] = output
            self._remaining[range_index] = size
        output[start:start + length].copy_(data)
        self._remaining[range_index] -= length
        if self._remaining[range_index]:
            return None
        del self._outputs[range_index], self._remaining[range_index]
        return output

    def _buffer(self, capacity: int):
        """A uint8 staging buffer of ``capacity`` bytes whose start is aligned."""
        torch = self._torch
        if capacity <= 0:
            return torch.empty(0, dtype=torch.uint8, device=self._device)
        raw = torch.empty(capacity + self._alignment, dtype=torch.uint8, device=self._device)
        skip = (-raw.data_ptr()) % self._alignment
        return raw[skip:skip + capacity]

    # -- collectives -----------------------------------------------------------------

    def _new_group(self, ranks: List[int], backend: Optional[str] = None):
        group = self._collective(
            lambda: self._dist.new_group(ranks=ranks, timeout=self._timeout, backend=backend),
            f"creating the group of ranks {ranks}")
        self._process_groups.append(group)
        return group

    def _broadcast(self, tensor, source: int, what: str) -> None:
        if self._group is None:  # a group of one rank: its own buffers hold everything
            return
        self._collective(lambda: self._dist.broadcast(tensor, src=source, group=self._group),
                         f"receiving {what} from rank {source}" if source != self._rank
                         else f"sending {what}")

    def _collective(self, call, what: str):
        try:
            return call()
        except RuntimeError as error:
            if isinstance(error, DistributedError):
                raise
            raise DistributedError(
                f"distributed load failed: rank {self._rank} of {self._world}: {what} failed "
                f"({TIMEOUT_ENV}={self._settings.timeout_seconds} s): {error}") from error

    def close(self) -> None:
        """Stops this rank's reads and releases the groups; tensors yielded stay valid."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        if self._reader is not None:
            self._reader.join(timeout=10)
            self._reader = None
        for group in self._process_groups:
            try:
                self._dist.destroy_process_group(group)
            except (RuntimeError, ValueError):  # already gone with the default group
                pass
        self._process_groups = []
