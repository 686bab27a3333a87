"""The tensorstream CLI against each object store on loopback (run.sh sets TENSORSTREAM_CLI
to the binary): stream, ls and pull of s3:// and gs:// URIs, and one-line errors naming
the URL."""
from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from conftest import read_tree

CLI = os.environ.get("TENSORSTREAM_CLI")
pytestmark = pytest.mark.skipif(not CLI, reason="TENSORSTREAM_CLI is not set: run tests/stores/run.sh")


def run(*args, env=None):
    return subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=120,
                          env=env)


def ok_json(*args):
    result = run(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def error_line(*args, env=None) -> str:
    """Runs a command that must fail: exit 1 and exactly one line on stderr."""
    result = run(*args, env=env)
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_stream_remote_and_local_files(prefix, shards):
    uris = [prefix.upload(p.name, p) for p in shards]
    for args in (uris, [uris[0], shards[1], uris[2]]):
        out = ok_json("stream", "--chunk-bytes", 1 << 20, "--memory-limit", 0, *args)
        assert out["tensors"] == 15
        # Every tensor's bytes: the file minus its 8-byte length and its header.
        data = 0
        for p in shards:
            with open(p, "rb") as f:
                data += os.path.getsize(p) - 8 - int.from_bytes(f.read(8), "little")
        assert out["bytes"] == data


def test_ls(model_tree):
    prefix, files = model_tree
    result = run("ls", prefix.uri)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "DIR  original/" in result.stdout and "original//" not in result.stdout
    top = [k for k in files if "/" not in k]
    assert re.fullmatch(rf"{len(top)} files, {sum(len(files[k]) for k in top)} bytes \(.*\), "
                        r"1 directories", lines[-1]), lines[-1]
    listed = ok_json("ls", "--recursive", prefix.uri)
    assert {e["path"]: e["bytes"] for e in listed["entries"]} == {
        k: len(v) for k, v in files.items()}
    assert listed["total_bytes"] == sum(map(len, files.values()))


def test_pull_with_globs(model_tree, tmp_path):
    prefix, files = model_tree
    out = ok_json("pull", "--include", "*.safetensors", "--include", "original/*",
                  "--exclude", "*params*", prefix.uri, tmp_path / "dst")
    expected = {k: v for k, v in files.items()
                if k.endswith(".safetensors") or k == "original/consolidated.pth"}
    assert sorted(out["paths"]) == sorted(expected) and out["files"] == len(expected)
    assert out["bytes"] == sum(map(len, expected.values()))
    assert read_tree(tmp_path / "dst") == expected


def test_errors_name_the_url(prefix):
    missing = f"{prefix.uri}/nope.safetensors"
    line = error_line("stream", missing)
    assert missing in line and "404" in line
    bucket = prefix.store.missing_container_uri().rsplit("/", 1)[0]
    line = error_line("ls", bucket)
    assert bucket in line and "404" in line


def test_s3_wrong_secret_is_refused_and_never_shown(s3_prefix, tmp_path):
    prefix = s3_prefix
    env = dict(os.environ, AWS_SECRET_ACCESS_KEY="wrong-secret-value-456")
    line = error_line("ls", prefix.uri, env=env)
    assert "403" in line and "wrong-secret-value-456" not in line
    assert "403" in error_line("pull", prefix.uri, tmp_path / "dst", env=env)
    assert not (tmp_path / "dst").exists()
