"""tensorstream.list / download / pull on local directories, and the refusal of object keys
that would leave the destination (served by a fake S3 listing on loopback, since real S3
servers such as SeaweedFS refuse to store keys with ".." segments). The real-server side
is tests/stores/test_python_s3.py."""
from __future__ import annotations

import http.server
import os
import threading
from urllib.parse import parse_qs, urlparse
from xml.sax.saxutils import escape

import pytest

import runai_model_streamer
from conftest import read_tree
import tensorstream


@pytest.fixture
def tree(tmp_path):
    """src/ with files at three levels (one empty) and an empty subdirectory."""
    src = tmp_path / "src"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "empty_dir").mkdir()
    files = {
        "a.safetensors": os.urandom(300_000),
        "config.json": b'{"k": 1}',
        "sub/b.safetensors": os.urandom(5000),
        "sub/deeper/notes.txt": b"notes",
        "sub/zero.bin": b"",
    }
    for rel, data in files.items():
        (src / rel).write_bytes(data)
    return src, files



def test_list_levels(tree):
    src, files = tree
    top = tensorstream.list(src)
    assert [(e.path, e.is_directory) for e in top] == [
        ("a.safetensors", False), ("config.json", False), ("empty_dir/", True), ("sub/", True)]
    assert top[0].uri == str(src / "a.safetensors") and top[0].size == 300_000
    everything = tensorstream.list(str(src), recursive=True)
    assert {e.path: e.size for e in everything} == {k: len(v) for k, v in files.items()}
    assert not any(e.is_directory for e in everything)
    assert [e.uri for e in everything] == sorted(e.uri for e in everything)


def test_list_errors(tmp_path):
    with pytest.raises(tensorstream.NotFoundError, match="nope"):
        tensorstream.list(tmp_path / "nope")
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(tensorstream.InvalidArgumentError, match="not a directory"):
        tensorstream.list(tmp_path / "f")
    with pytest.raises(tensorstream.InvalidArgumentError, match="not supported for 'hdfs://'"):
        tensorstream.list("hdfs://bucket/model")


def test_download_nested_with_progress(tree, tmp_path):
    src, files = tree
    seen = []
    n = tensorstream.download(src / "a.safetensors", tmp_path / "dst", "x/y/a.bin",
                              progress=seen.append, chunk_bytes=65536, concurrency=3)
    assert n == 300_000
    assert (tmp_path / "dst/x/y/a.bin").read_bytes() == files["a.safetensors"]
    assert seen == sorted(seen) and seen[-1] == n and len(seen) == 5


def test_download_progress_exception_is_raised(tree, tmp_path):
    src, _ = tree

    def fail(done):
        raise KeyError("stop")

    with pytest.raises(KeyError, match="stop"):
        tensorstream.download(src / "a.safetensors", tmp_path / "dst", "a.bin", progress=fail)


@pytest.mark.parametrize("bad", ["../escape.bin", "a/../../escape.bin", "/tmp/escape.bin",
                                 "a//b", "./a", "a\\b"])
def test_download_refuses_paths_leaving_dst(tree, tmp_path, bad):
    src, _ = tree
    with pytest.raises(tensorstream.InvalidArgumentError, match="refusing to write"):
        tensorstream.download(src / "config.json", tmp_path / "dst", bad)
    assert not (tmp_path / "escape.bin").exists() and not os.path.exists("/tmp/escape.bin")
    assert read_tree(tmp_path / "dst") == {}


def test_pull_filters_on_relative_paths(tree, tmp_path):
    src, files = tree
    paths = tensorstream.pull(src, tmp_path / "dst", include=["*.safetensors", "sub/*"],
                              exclude=["*.txt"])
    assert paths == ["a.safetensors", "sub/b.safetensors", "sub/zero.bin"]
    assert read_tree(tmp_path / "dst") == {p: files[p] for p in paths}
    assert tensorstream.pull(src, tmp_path / "none", include=[]) == []


def test_pull_everything_with_progress(tree, tmp_path):
    src, files = tree
    assert tensorstream.pull(f"file://{src}", tmp_path / "dst", progress=True) == sorted(files)
    assert read_tree(tmp_path / "dst") == files


class _FakeListing(http.server.BaseHTTPRequestHandler):
    """Answers ListObjectsV2 with the class's `keys` (under the requested prefix); every
    other request 404s, so a download attempt would surface as NotFoundError."""

    keys: list = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        query = parse_qs(urlparse(self.path).query)
        if "list-type" not in query:
            return self._reply(404, b"<Error><Code>NoSuchKey</Code></Error>")
        contents = "".join(f"<Contents><Key>{escape(k)}</Key><Size>1</Size></Contents>"
                           for k in self.keys)
        body = (f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>b</Name>'
                f"<IsTruncated>false</IsTruncated>{contents}</ListBucketResult>").encode()
        self._reply(200, body)

    def do_HEAD(self):  # noqa: N802
        self._reply(404, b"")

    def _reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_s3():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeListing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tensorstream.S3Credentials("test-key", "test-secret", region_name="us-east-1",
                                     endpoint=f"http://127.0.0.1:{server.server_port}")
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("key", ["m/../escape.bin", "m/a/../../escape.bin", "m//escape.bin",
                                 "m/./escape.bin", "m/a\\..\\..\\escape.bin"])
def test_pull_refuses_object_keys_leaving_dst(fake_s3, tmp_path, key, monkeypatch):
    # A fine key listed first is not fetched either: every key is checked before any
    # download (the fake serves no objects, so a fetch would fail differently).
    monkeypatch.setattr(_FakeListing, "keys", ["m/a-fine-key.bin", key])
    dst = tmp_path / "models" / "dst"
    with pytest.raises(tensorstream.InvalidArgumentError, match="refusing to write"):
        runai_model_streamer.pull_files("s3://b/m", str(dst), s3_credentials=fake_s3)
    with pytest.raises(tensorstream.InvalidArgumentError, match="refusing to write"):
        tensorstream.pull("s3://b/m/", dst, s3_credentials=fake_s3)
    assert read_tree(tmp_path) == {}
