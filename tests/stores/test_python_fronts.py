"""The Python fronts against each object store on loopback (see run.sh; `prefix` is a fresh
folder of S3, then of GCS): the drop-in streamer, list_safetensors, pull_files,
ObjectStorageModel across processes, the native list/pull/download; and explicit S3
credentials. The cases every backend must pass alike are in test_conformance.py."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import tensorstream
from runai_model_streamer import (
    ObjectStorageModel,
    S3Credentials,
    SafetensorsStreamer,
    list_safetensors,
    pull_files,
)

from conftest import assert_same, read_tree, reference


def stream_all(paths, **kwargs) -> dict:
    with SafetensorsStreamer() as streamer:
        streamer.stream_files(paths, **kwargs)
        counts = [len(streamer.files_to_tensors_metadata[i]) for i in range(len(paths))]
        got = {}
        for name, tensor in streamer.get_tensors():
            assert name not in got, f"{name} delivered twice"
            got[name] = tensor
    return got, counts


def expected_tensors(paths) -> dict:
    out = {}
    for path in paths:
        out.update(reference(path))
    return out


def check_same(got: dict, expected: dict) -> None:
    assert sorted(got) == sorted(expected)
    for name, tensor in expected.items():
        assert_same(got[name], tensor, name)


@pytest.mark.parametrize("chunk", [None, "1048576"])
def test_streamer_matches_safe_open(prefix, shards, chunk, monkeypatch):
    if chunk:
        monkeypatch.setenv("RUNAI_STREAMER_CHUNK_BYTESIZE", chunk)
    monkeypatch.setenv("RUNAI_STREAMER_MEMORY_LIMIT", "0")  # the largest tensor at a time
    uris = [prefix.upload(p.name, p) for p in shards]
    got, counts = stream_all(uris)
    assert counts == [5, 5, 5]
    check_same(got, expected_tensors(shards))


def test_tensor_names_read_only_their_ranges(prefix, shards):
    uris = [prefix.upload(p.name, p) for p in shards]
    wanted = ["layers.0.k", "layers.2.scale", "layers.1.up"]
    with SafetensorsStreamer() as streamer:
        streamer.stream_files(uris, tensor_names=wanted)
        got = dict(streamer.get_tensors())
        read, _ = streamer._stream.stats()
    expected = expected_tensors(shards)
    check_same(got, {name: expected[name] for name in wanted})
    big = expected["layers.0.big"].numel() * 2
    assert read < big, f"{read} bytes read for three small tensors"  # no 'big' was read


def test_mixed_local_and_remote_files_in_one_call(prefix, shards):
    paths = [str(shards[0]), prefix.upload(shards[1].name, shards[1]), str(shards[2])]
    got, counts = stream_all(paths)
    assert counts == [5, 5, 5]
    check_same(got, expected_tensors(shards))


def test_explicit_s3_credentials_are_honoured(s3_prefix, shards, monkeypatch):
    prefix = s3_prefix
    uri = prefix.upload("model.safetensors", shards[0])
    secret = "wrong-secret-value-123"
    # The environment has the right keys; the explicit wrong ones must win.
    with pytest.raises(tensorstream.PermissionDeniedError) as error:
        stream_all([uri], s3_credentials=S3Credentials("wrong-key-id", secret))
    message = str(error.value)
    assert uri in message and "403" in message, message
    assert secret not in message
    # Explicit right keys and endpoint with nothing in the environment.
    right = S3Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"],
                          region_name="us-east-1", endpoint=os.environ["AWS_ENDPOINT_URL"])
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    got, _ = stream_all([uri], s3_credentials=right)
    check_same(got, reference(shards[0]))
    assert list_safetensors(prefix.uri, s3_credentials=right) == [uri]
    with pytest.raises(tensorstream.PermissionDeniedError):
        list_safetensors(prefix.uri, s3_credentials=S3Credentials(
            "wrong-key-id", secret, endpoint=right.endpoint))


def test_missing_object_names_the_uri(prefix):
    with pytest.raises(tensorstream.NotFoundError, match=f"{prefix.uri}/nope.safetensors"):
        stream_all([f"{prefix.uri}/nope.safetensors"])


def test_list_safetensors_is_flat_sorted_and_full_uris(prefix, shards):
    for p in reversed(shards):
        prefix.upload(p.name, p)
    prefix.put("config.json", b"{}")
    prefix.put("sub/nested.safetensors", b"x")
    prefix.put("notes.safetensors.txt", b"x")
    expected = [f"{prefix.uri}/{p.name}" for p in shards]
    assert list_safetensors(prefix.uri) == expected
    assert list_safetensors(prefix.uri + "/") == expected
    assert list_safetensors(f"{prefix.uri}/sub") == [f"{prefix.uri}/sub/nested.safetensors"]
    assert list_safetensors(f"{prefix.uri}/empty") == []


def test_pull_files_everything(model_tree, tmp_path):
    prefix, files = model_tree
    pull_files(prefix.uri, str(tmp_path / "dst"))
    assert read_tree(tmp_path / "dst") == files


def test_pull_files_patterns_match_whole_keys(model_tree, tmp_path):
    prefix, files = model_tree
    # vLLM's call: everything but the weights.
    pull_files(prefix.uri + "/", str(tmp_path / "a"), ignore_pattern=["*.safetensors", "*.pth"])
    assert read_tree(tmp_path / "a") == {k: v for k, v in files.items()
                                         if not k.endswith((".safetensors", ".pth"))}
    pull_files(prefix.uri, str(tmp_path / "b"), allow_pattern=["*.json", "*/original/*"],
               ignore_pattern=["*params*"])
    assert sorted(read_tree(tmp_path / "b")) == [
        "config.json", "original/consolidated.pth", "tokenizer.json"]
    # As in the reference, a pattern is matched against the whole key, prefix included.
    pull_files(prefix.uri, str(tmp_path / "c"), allow_pattern=["config.json"])
    assert read_tree(tmp_path / "c") == {}
    pull_files(prefix.uri, str(tmp_path / "d"), allow_pattern=[f"{prefix.key}/config.json"])
    assert read_tree(tmp_path / "d") == {"config.json": files["config.json"]}


def test_native_list_and_pull(model_tree, tmp_path):
    prefix, files = model_tree
    top = tensorstream.list(prefix.uri)
    assert [(e.path, e.is_directory) for e in top] == sorted(
        [(k, False) for k in files if "/" not in k] + [("original/", True)])
    everything = tensorstream.list(prefix.uri, recursive=True)
    assert {e.path: e.size for e in everything} == {k: len(v) for k, v in files.items()}
    assert all(e.uri == f"{prefix.uri}/{e.path}" for e in everything)
    # pull's patterns apply to the path below the prefix.
    got = tensorstream.pull(prefix.uri, tmp_path / "dst", include=["original/*", "*.md"],
                            chunk_bytes=1 << 20, concurrency=4)
    assert got == ["README.md", "original/consolidated.pth", "original/params.json"]
    assert read_tree(tmp_path / "dst") == {k: files[k] for k in got}


def test_download_large_object_through_the_pipeline(prefix, tmp_path):
    data = os.urandom(9 * 1024 * 1024 + 17)
    uri = prefix.put("big.bin", data)
    seen = []
    n = tensorstream.download(uri, tmp_path, "x/big.bin", progress=seen.append,
                              chunk_bytes=1 << 20, memory_limit=2 << 20)
    assert n == len(data) and (tmp_path / "x/big.bin").read_bytes() == data
    assert len(seen) == 10 and seen[-1] == n


# Run by two processes at once: enters ObjectStorageModel on the same dst and pulls; the
# module-level pull_files is wrapped to record, in a shared log, each pull really made.
_CHILD = textwrap.dedent("""
    import os, sys, time
    import runai_model_streamer.safetensors_streamer.safetensors_streamer as storage
    from runai_model_streamer import ObjectStorageModel

    model_path, dst, log = sys.argv[1:4]
    real_pull = storage.pull_files

    def recording_pull(*args):
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(0.5)  # widen the window in which the other process waits
        real_pull(*args)

    storage.pull_files = recording_pull
    with ObjectStorageModel(model_path=model_path, dst=dst) as model:
        model.pull_files(allow_pattern=["*.json", "*.safetensors"])
    print(sorted(os.listdir(dst)))
""")


def test_object_storage_model_two_processes_download_once(model_tree, tmp_path):
    prefix, files = model_tree
    dst, log = tmp_path / "cache" / "model", tmp_path / "pulls.log"
    children = [subprocess.Popen([sys.executable, "-c", _CHILD, prefix.uri, str(dst), str(log)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
    outputs = [c.communicate(timeout=120) for c in children]
    for child, (out, err) in zip(children, outputs):
        assert child.returncode == 0, err
    assert len(log.read_text().split()) == 1, "both processes downloaded"
    expected = {k: v for k, v in files.items() if k.endswith((".json", ".safetensors"))}
    got = read_tree(dst)
    assert got.pop(ObjectStorageModel.SENTINEL_NAME) == b""
    assert got == expected
    assert outputs[0][0] == outputs[1][0]  # both saw the complete directory


def test_object_storage_model_retries_after_a_failed_pull(model_tree, tmp_path):
    prefix, files = model_tree
    dst = str(tmp_path / "model")
    with pytest.raises(tensorstream.NotFoundError):
        missing = prefix.store.missing_container_uri().rsplit("/", 1)[0]
        with ObjectStorageModel(model_path=missing, dst=dst) as model:
            model.pull_files()
    with pytest.raises(RuntimeError, match="interrupted"):
        with ObjectStorageModel(model_path=prefix.uri, dst=dst) as model:
            model.pull_files()
            raise RuntimeError("interrupted")
    assert ObjectStorageModel.SENTINEL_NAME not in os.listdir(dst)
    with ObjectStorageModel(model_path=prefix.uri, dst=dst) as model:
        model.pull_files()
    got = read_tree(dst)
    assert got.pop(ObjectStorageModel.SENTINEL_NAME) == b""
    assert got == files

