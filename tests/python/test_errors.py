"""Bad input: every corrupt file raises a TensorStreamError naming the file, never a crash."""
from __future__ import annotations

import json
import struct

import pytest

import tensorstream
from runai_model_streamer import SafetensorsStreamer
from tensorstream import FormatError, NotFoundError, TensorStreamError


def with_header(header, data: bytes = b"", declared=None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    length = len(raw) if declared is None else declared
    return struct.pack("<Q", length) + raw + data


def tensor(dtype="F32", shape=(1,), offsets=(0, 4)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


CORRUPT = {
    "empty": b"",
    "shorter-than-length": b"\x05\x00\x00",
    "header-beyond-file": with_header(b"{}", declared=4096),
    "header-over-100MiB": with_header(b"{}", declared=200 << 20),
    "header-not-utf8": with_header(b'{"\xff\xfe": 1}'),
    "header-not-json": with_header(b"{not json"),
    "header-not-object": with_header(b"[1, 2]"),
    "missing-offsets": with_header({"a": {"dtype": "F32", "shape": [1]}}, b"\0" * 4),
    "string-offsets": with_header({"a": tensor(offsets=("0", "4"))}, b"\0" * 4),
    "offsets-out-of-range": with_header({"a": tensor(offsets=(0, 400))}, b"\0" * 4),
    "truncated-data": with_header({"a": tensor(shape=(4,), offsets=(0, 16))}, b"\0" * 10),
    "overlapping": with_header({"a": tensor(shape=(2,), offsets=(0, 8)),
                                "b": tensor(shape=(2,), offsets=(4, 12))}, b"\0" * 12),
    "gapped": with_header({"a": tensor(offsets=(0, 4)), "b": tensor(offsets=(8, 12))},
                          b"\0" * 12),
    "size-mismatch": with_header({"a": tensor(shape=(3,), offsets=(0, 8))}, b"\0" * 8),
    "negative-shape": with_header({"a": tensor(shape=(-1,), offsets=(0, 4))}, b"\0" * 4),
    "unknown-dtype": with_header({"a": tensor(dtype="F13")}, b"\0" * 4),
    "duplicate-names": with_header(
        b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},'
        b' "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}', b"\0" * 8),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_corrupt_file_raises_an_error_naming_the_file(tmp_path, case):
    path = tmp_path / f"{case}.safetensors"
    path.write_bytes(CORRUPT[case])
    with pytest.raises(TensorStreamError) as error:
        with SafetensorsStreamer() as streamer:
            streamer.stream_file(str(path))
            list(streamer.get_tensors())
    assert str(path) in str(error.value)


@pytest.mark.parametrize("case", ["header-not-json", "size-mismatch", "unknown-dtype"])
def test_format_errors_are_format_errors(tmp_path, case):
    path = tmp_path / f"{case}.safetensors"
    path.write_bytes(CORRUPT[case])
    with pytest.raises(FormatError):
        tensorstream.load(str(path))


def test_format_error_names_the_tensor(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(with_header({"ok": tensor(offsets=(0, 4)),
                                  "wrong.size": tensor(shape=(3,), offsets=(4, 8))},
                                 b"\0" * 8))
    with pytest.raises(FormatError, match="wrong.size"):
        tensorstream.load(str(path))


def test_missing_file_is_a_file_not_found_error(tmp_path):
    path = str(tmp_path / "missing.safetensors")
    with pytest.raises(FileNotFoundError) as error:
        tensorstream.load(path)
    assert isinstance(error.value, NotFoundError)
    assert path in str(error.value)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(TensorStreamError) as error:
        tensorstream.load(str(tmp_path))
    assert str(tmp_path) in str(error.value)


def test_unparsable_environment_names_the_variable(tmp_path, monkeypatch, model_files):
    monkeypatch.setenv("RUNAI_STREAMER_CONCURRENCY", "many")
    with pytest.raises(tensorstream.InvalidArgumentError, match="RUNAI_STREAMER_CONCURRENCY"):
        tensorstream.load(model_files[0])


def test_error_carries_the_status(tmp_path):
    with pytest.raises(TensorStreamError) as error:
        tensorstream.load(str(tmp_path / "missing.safetensors"))
    assert error.value.status_name == "NOT_FOUND"
    assert error.value.status == -2
