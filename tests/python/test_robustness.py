"""Hostile files and hostile timing: a corpus of corrupt files through every front end,
special files, a stream closed or interrupted while its consumer waits, a forked child,
names that only differ after a NUL."""
from __future__ import annotations

import json
import multiprocessing
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

import tensorstream
from runai_model_streamer import SafetensorsStreamer

from conftest import save

CLI = [sys.executable, "-c", "from tensorstream._cli import main; main()"]


def image(header, data: bytes = b"", declared=None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if declared is None else declared) + raw + data


def entry(dtype="F32", shape=(2,), begin=0, end=8):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": [begin, end]}


def corrupt_corpus() -> dict:
    """About ninety corrupt files: every way a header or its data can be wrong, and
    truncations of a valid file at every boundary."""
    good = image({"a": entry(), "b": entry("U8", (3,), 8, 11)}, bytes(range(11)))
    cases = {f"truncated-at-{n}": good[:n] for n in
             (0, 1, 7, 8, 9, 20, len(good) - 12, len(good) - 11, len(good) - 4, len(good) - 1)}
    cases.update({
        "trailing-byte": good + b"\0",
        "trailing-kilobyte": good + bytes(1024),
        "length-zero": image(b"", b""),
        "length-beyond-file": image(b"{}", declared=1 << 20),
        "length-100MiB-plus-one": image(b"{}", declared=(100 << 20) + 1),
        "length-max": image(b"{}", declared=(1 << 64) - 1),
        "length-negative-as-signed": image(b"{}", declared=(1 << 63) + 5),
        "not-json": image(b"{not json}"),
        "json-then-garbage": image(b'{"a": 1} x'),
        "json-then-nul": image(b'{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}\0', b"x"),
        "two-objects": image(b"{}{}"),
        "array": image(b"[1, 2]"),
        "string": image(b'"header"'),
        "number": image(b"42"),
        "null": image(b"null"),
        "bad-utf8": image(b'{"\xff\xfe": {}}'),
        "overlong-utf8": image(b'{"\xc0\xaf": {}}'),
        "utf8-surrogate": image(b'{"\xed\xa0\x80": {}}'),
        "unclosed-string": image(b'{"a'),
        "unclosed-object": image(b'{"a": {"dtype": "U8"'),
        "deep-metadata": image(b'{"__metadata__": {"k": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"),
        "deep-entry": image(b'{"a": ' + b"{" * 1000 + b"}" * 1000 + b"}"),
        "deep-unbalanced": image(b"[" * 200_000),
        "metadata-array": image({"__metadata__": [1]}),
        "metadata-string": image({"__metadata__": "x"}),
        "metadata-twice": image(b'{"__metadata__": {}, "__metadata__": {}}'),
        "entry-number": image({"a": 5}),
        "entry-array": image({"a": [1, 2]}),
        "entry-null": image({"a": None}),
        "missing-dtype": image({"a": {"shape": [2], "data_offsets": [0, 8]}}, bytes(8)),
        "missing-shape": image({"a": {"dtype": "F32", "data_offsets": [0, 8]}}, bytes(8)),
        "missing-offsets": image({"a": {"dtype": "F32", "shape": [2]}}, bytes(8)),
        "dtype-number": image({"a": {"dtype": 5, "shape": [2], "data_offsets": [0, 8]}}, bytes(8)),
        "dtype-unknown": image({"a": entry("F7")}, bytes(8)),
        "dtype-lowercase": image({"a": entry("f32")}, bytes(8)),
        "dtype-empty": image({"a": entry("")}, bytes(8)),
        "shape-string": image({"a": {"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}}, bytes(8)),
        "shape-negative": image({"a": entry(shape=(-2,))}, bytes(8)),
        "shape-float": image({"a": entry(shape=(2.0,))}, bytes(8)),
        "shape-nested": image({"a": {"dtype": "F32", "shape": [[2]], "data_offsets": [0, 8]}}, bytes(8)),
        "shape-huge": image({"a": entry(shape=(1 << 62, 1 << 62))}, bytes(8)),
        "shape-2^63": image(b'{"a": {"dtype": "F32", "shape": [9223372036854775808], '
                            b'"data_offsets": [0, 8]}}', bytes(8)),
        "shape-too-big": image({"a": entry(shape=(3,))}, bytes(8)),
        "shape-too-small": image({"a": entry(shape=(1,))}, bytes(8)),
        "shape-bool": image({"a": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, bytes(4)),
        "f4-odd-bits": image({"a": entry("F4", (3,), 0, 2)}, bytes(2)),
        "offsets-one": image({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0]}}, bytes(8)),
        "offsets-three": image({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8, 9]}}, bytes(9)),
        "offsets-strings": image({"a": {"dtype": "F32", "shape": [2], "data_offsets": ["0", "8"]}}, bytes(8)),
        "offsets-negative": image({"a": entry(begin=-8, end=0)}, bytes(8)),
        "offsets-reversed": image({"a": entry(begin=8, end=0)}, bytes(8)),
        "offsets-float": image({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0.0, 8.0]}}, bytes(8)),
        "offsets-huge": image({"a": entry(begin=(1 << 64) - 8, end=(1 << 64) - 1)}, bytes(8)),
        "offsets-beyond-uint64": image(b'{"a": {"dtype": "U8", "shape": [1], "data_offsets": '
                                       b'[0, 18446744073709551616]}}', bytes(8)),
        "offsets-object": image({"a": {"dtype": "F32", "shape": [2], "data_offsets": {"0": 8}}}, bytes(8)),
        "offsets-beyond-data": image({"a": entry(begin=0, end=8)}, bytes(4)),
        "not-at-start": image({"a": entry(begin=4, end=12)}, bytes(12)),
        "overlap": image({"a": entry(), "b": entry(begin=4, end=12)}, bytes(12)),
        "overlap-contained": image({"a": entry("F32", (4,), 0, 16), "b": entry(begin=4, end=12)}, bytes(16)),
        "same-range": image({"a": entry(), "b": entry()}, bytes(8)),
        "gap": image({"a": entry(), "b": entry(begin=12, end=20)}, bytes(20)),
        "duplicate": image(b'{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, '
                           b'"a": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}', b"xy"),
        "nul-in-json-string": image(b'{"a\0b": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}', b"x"),
        "control-in-json-string": image(b'{"a\nb": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}', b"x"),
        "bad-escape": image(b'{"a\\qb": {}}'),
        "lone-surrogate-escape": image(b'{"\\ud800": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}', b"x"),
        "escape-sequence-name-bad-dtype": image({"\x1b[2J\x1b[H": entry("Q")}, bytes(8)),
        "bom": image(b"\xef\xbb\xbf{}"),
        "huge-name": image({"x" * 100_000: entry("Q")}, bytes(8)),
        "many-bad-entries": image({f"t{i}": entry("F32", (2,), 8 * i, 8 * i + 8) for i in range(1, 1000)},
                                  bytes(8 * 1000)),
    })
    return cases


CORPUS = corrupt_corpus()


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("corrupt")
    for name, data in CORPUS.items():
        (root / f"{name}.safetensors").write_bytes(data)
    return root


def test_the_corpus_is_large():
    assert len(CORPUS) >= 80


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_every_front_end_refuses_it_with_a_clear_error(corpus_dir, name):
    path = str(corpus_dir / f"{name}.safetensors")
    with pytest.raises(tensorstream.TensorStreamError) as native:
        tensorstream.load(path)
    assert path in str(native.value) and isinstance(native.value, ValueError)
    with pytest.raises(ValueError) as dropin:
        with SafetensorsStreamer() as streamer:
            streamer.stream_file(path)
            list(streamer.get_tensors())
    assert path in str(dropin.value)
    assert "\x1b" not in str(native.value) and "\n" not in str(native.value)


def test_the_cli_refuses_the_whole_corpus_without_crashing(corpus_dir):
    for name in sorted(CORPUS):
        path = str(corpus_dir / f"{name}.safetensors")
        for command in ("inspect", "stream"):
            result = subprocess.run([*CLI, command, path], capture_output=True, timeout=60)
            assert result.returncode == 1, (name, command, result.returncode, result.stderr)
            lines = result.stderr.splitlines()
            assert len(lines) == 1 and path.encode() in lines[0], (name, result.stderr[-500:])
            assert b"\x1b" not in result.stderr


@pytest.mark.parametrize("special", ["fifo", "directory", "/dev/zero", "/dev/null"])
def test_special_files_are_refused_without_blocking(tmp_path, special):
    if special == "fifo":
        path = str(tmp_path / "pipe")
        os.mkfifo(path)
    elif special == "directory":
        path = str(tmp_path)
    else:
        path = special
    code = "import sys, tensorstream; tensorstream.load(sys.argv[1])"
    result = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert "not a regular file" in result.stderr and path in result.stderr


def test_names_differing_after_a_nul_stay_two_tensors(tmp_path):
    raw = (b'{"w\\u0000one": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, '
           b'"w\\u0000two": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}')
    path = tmp_path / "nul-names.safetensors"
    path.write_bytes(image(raw, b"\x01\x02"))
    loaded = tensorstream.load(str(path))
    assert {k: v.tolist() for k, v in loaded.items()} == {"w\0one": [1], "w\0two": [2]}
    with SafetensorsStreamer() as streamer:
        streamer.stream_file(str(path))
        assert {k: v.tolist() for k, v in streamer.get_tensors()} == {"w\0one": [1], "w\0two": [2]}


def test_a_path_with_a_nul_is_refused(tmp_path):
    with pytest.raises(ValueError, match="NUL"):
        tensorstream.load(str(tmp_path / "a\0b.safetensors"))


def blocked_stream(tmp_path):
    """A started stream whose readers wait: under a limit of one tensor, the consumer
    holds the first batch without keeping or releasing it."""
    path = save({n: torch.zeros(1 << 18) for n in ("a", "b", "c")}, tmp_path / "m.safetensors")
    stream = tensorstream.Stream(memory_limit=0)
    stream.add_file(path)
    stream.start()
    batches = stream.batches()
    return stream, batches, next(batches)


def test_close_from_another_thread_stops_a_waiting_consumer(tmp_path):
    stream, batches, held = blocked_stream(tmp_path)
    closer = threading.Timer(0.3, stream.close)
    closer.start()
    start = time.monotonic()
    with pytest.raises(tensorstream.CancelledError):
        next(batches)
    assert time.monotonic() - start < 5
    closer.join()
    held.release(0, held.count)  # handles stay valid after the stream is gone


def test_ctrl_c_ends_a_waiting_load_within_a_second(tmp_path):
    stream, batches, held = blocked_stream(tmp_path)
    main = threading.get_ident()
    sent = []

    def interrupt():
        sent.append(time.monotonic())
        signal.pthread_kill(main, signal.SIGINT)

    timer = threading.Timer(0.3, interrupt)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        next(batches)
    assert time.monotonic() - sent[0] < 1.0
    timer.join()
    stream.close()
    held.release(0, held.count)


def _iterate_parents_stream(stream, outcome):
    try:
        list(stream.torch_items())
        outcome.put("no error")
    except tensorstream.FailedPreconditionError as error:
        outcome.put(f"error: {error}")
    except BaseException as error:  # noqa: BLE001 (reported to the parent)
        outcome.put(f"wrong error: {type(error).__name__}: {error}")


def test_a_forked_child_gets_an_error_not_a_hang(tmp_path):
    path = save({"a": torch.ones(1 << 16)}, tmp_path / "m.safetensors")
    stream = tensorstream.Stream(host_memory="private")
    stream.add_file(path)
    stream.start()
    context = multiprocessing.get_context("fork")
    outcome = context.Queue()
    child = context.Process(target=_iterate_parents_stream, args=(stream, outcome))
    child.start()
    child.join(30)
    assert child.exitcode == 0, "the child hung or crashed"
    message = outcome.get(timeout=5)
    assert message.startswith("error:") and "fork" in message, message
    assert len(list(stream.torch_items())) == 1  # the parent's stream is untouched
    stream.close()


def test_a_thousand_streams_leave_nothing_behind(tmp_path):
    path = save({"a": torch.ones(1000), "b": torch.zeros(10)}, tmp_path / "m.safetensors")

    def counts():
        fds = len(os.listdir("/proc/self/fd"))
        threads = len(os.listdir("/proc/self/task"))
        with open("/proc/self/maps") as f:
            maps = sum(1 for _ in f)
        with open("/proc/self/status") as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
        return fds, threads, maps, rss

    def cycle(mode):
        with tensorstream.Stream(host_memory=mode) as stream:
            stream.add_file(path)
            stream.start()
            for _ in stream.torch_items():
                pass

    for mode in ("mapped", "private"):
        cycle(mode)  # warm up allocators and caches
    before = counts()
    for i in range(1000):
        cycle("mapped" if i % 2 else "private")
    after = counts()
    assert after[0] <= before[0] and after[1] <= before[1], (before, after)
    assert after[2] <= before[2] + 8, (before, after)
    assert after[3] <= before[3] + 16 * 1024, (before, after)  # KiB
