"""One conformance suite for every backend: the same cases, run once per store (local disk,
S3 on SeaweedFS, GCS on fake-gcs-server; all on loopback, started by run.sh), through the
surfaces users touch: the CLI, the drop-in module and the native Python API.

    every dtype byte-exact       missing object / bucket       access denied
    listing > 1,000 keys         pull with hostile keys        fault proxy (cuts, 503/429
    a wrong endpoint                                           storms, stalls)

Cases about endpoints and the proxy apply to object stores only.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

import tensorstream
from runai_model_streamer import SafetensorsStreamer, list_safetensors, pull_files

from conftest import assert_same, random_tensor, read_tree, reference
from safetensors.torch import save_file

CLI = os.environ.get("TENSORSTREAM_CLI")
needs_cli = pytest.mark.skipif(not CLI, reason="TENSORSTREAM_CLI is not set: run tests/stores/run.sh")

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64,
          torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool, torch.complex64,
          torch.uint16, torch.uint32, torch.uint64, torch.float8_e4m3fn, torch.float8_e5m2,
          torch.float8_e8m0fnu]
MANY_KEYS = 1050  # more than one page of every store's listing (1,000 per page)


def cli(*args, env=None, timeout=180):
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([CLI, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def cli_json(*args, env=None):
    result = cli(*args, "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def cli_error(*args, env=None, timeout=180) -> str:
    """Runs a command that must fail: exit 1 and exactly one line on stderr."""
    result = cli(*args, env=env, timeout=timeout)
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def stream_dropin(uris) -> dict:
    with SafetensorsStreamer() as streamer:
        streamer.stream_files(list(uris))
        got = {}
        for name, tensor in streamer.get_tensors():
            assert name not in got, f"{name} delivered twice"
            got[name] = tensor.clone()
    return got


def check_same(got: dict, expected: dict) -> None:
    assert sorted(got) == sorted(expected)
    for name, tensor in expected.items():
        assert_same(got[name], tensor, name)


@pytest.fixture(scope="module")
def dtypes_file(tmp_path_factory):
    """Every dtype in several shapes, and a 5 MiB tensor that spans several 1 MiB chunks."""
    g = torch.Generator().manual_seed(11)
    tensors = {}
    for dtype in DTYPES:
        for shape in [(), (0,), (3, 5), (2, 3, 7)]:
            tensors[f"{dtype}-{shape}"] = random_tensor(dtype, shape, g)
    tensors["f4-(3, 5)"] = random_tensor(torch.uint8, (3, 5), g).view(torch.float4_e2m1fn_x2)
    tensors["big"] = random_tensor(torch.float32, (1024, 1280 + 3), g)
    path = tmp_path_factory.mktemp("dtypes") / "all.safetensors"
    save_file(tensors, str(path))
    return path


def test_every_dtype_is_byte_exact(store, dtypes_file, tmp_path, monkeypatch):
    uri = store.new_prefix("dtypes").upload("all.safetensors", dtypes_file)
    expected = reference(dtypes_file)
    monkeypatch.setenv("RUNAI_STREAMER_CHUNK_BYTESIZE", str(1 << 20))
    check_same(stream_dropin([uri]), expected)
    check_same(tensorstream.load(uri, host_memory="private", memory_limit=0), expected)
    wanted = ["big", "torch.bool-(3, 5)", "f4-(3, 5)"]
    check_same(tensorstream.load(uri, names=wanted), {n: expected[n] for n in wanted})
    if CLI:
        out = cli_json("stream", "--chunk-bytes", 1 << 20, uri)
        assert out["tensors"] == len(expected)
        assert out["bytes"] == sum(t.nbytes for t in expected.values())


def test_missing_object_and_container_are_named(store, tmp_path):
    prefix = store.new_prefix("missing")
    prefix.put("present.txt", b"x")
    missing = f"{prefix.uri}/nope.safetensors"
    with pytest.raises(tensorstream.NotFoundError, match=missing.replace(".", r"\.")):
        tensorstream.load(missing)
    with pytest.raises(Exception) as dropin_error:  # the drop-in raises the reference's class
        stream_dropin([missing])
    assert missing in str(dropin_error.value)
    container = store.missing_container_uri()
    with pytest.raises(tensorstream.NotFoundError):
        tensorstream.list(container.rsplit("/", 1)[0], recursive=True)
    if CLI:
        line = cli_error("stream", missing)
        assert missing in line
        assert ("404" in line) == store.remote, line
        assert "not found" in line.lower() or "no such" in line.lower(), line
        assert container.rsplit("/", 1)[0] in cli_error("ls", container.rsplit("/", 1)[0])
        assert not (tmp_path / "dst").exists() or not os.listdir(tmp_path / "dst")


def _unprivileged_cli(tmp_path: Path):
    """A copy of the CLI (and the library next to it) that the user nobody can run, for
    the local access-denied case when the tests run as root (root reads any file)."""
    folder = Path(tempfile.mkdtemp(prefix="tensorstream-cli-"))
    os.chmod(folder, 0o755)
    cli_path = Path(CLI).resolve()
    shutil.copy2(cli_path, folder / "tensorstream")
    for library in cli_path.parent.glob("libtensorstream.so*"):
        shutil.copy2(library, folder / library.name, follow_symlinks=True)
    return folder


def test_access_denied_is_reported_and_secrets_never_shown(store, proxies, tmp_path, monkeypatch,
                                                           shards):
    prefix = store.new_prefix("denied")
    uri = prefix.upload("model.safetensors", shards[0])
    if store.remote:
        env = store.denied_env(proxies.get(store, "auth").port)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        with pytest.raises(tensorstream.PermissionDeniedError) as error:
            tensorstream.load(uri)
        message = str(error.value)
        assert uri in message and ("403" in message or "401" in message), message
        with pytest.raises(tensorstream.PermissionDeniedError) as listing_error:
            tensorstream.list(prefix.uri)
        messages = [message, str(listing_error.value)]
        if CLI:
            line = cli_error("stream", uri)
            assert uri in line and ("403" in line or "401" in line), line
            messages += [line, cli_error("pull", prefix.uri, tmp_path / "dst")]
            assert messages[-1]
            assert not (tmp_path / "dst").exists()
        for text in messages:
            for secret in store.denied_secrets():
                assert secret not in text, text
        return
    # Local: a file whose mode forbids reading, opened by a process that is not root.
    os.chmod(uri, 0)
    os.chmod(Path(uri).parent, 0o755)
    os.chmod(store.root, 0o755)
    if os.geteuid() != 0:
        with pytest.raises(tensorstream.PermissionDeniedError, match="model.safetensors"):
            tensorstream.load(uri)
        line = cli_error("stream", uri) if CLI else uri
    else:
        if not CLI:
            pytest.skip("as root, the local case needs the CLI to run as another user")
        folder = _unprivileged_cli(tmp_path)
        try:
            result = subprocess.run([str(folder / "tensorstream"), "stream", uri], user="nobody",
                                    env={"LD_LIBRARY_PATH": str(folder)}, capture_output=True,
                                    text=True, timeout=60)
        finally:
            shutil.rmtree(folder)
        assert result.returncode == 1, (result.stdout, result.stderr)
        line = result.stderr.strip()
    assert uri in line and "ermission denied" in line, line


@pytest.fixture(scope="module")
def many_keys():
    """Per store, a prefix holding MANY_KEYS objects and one in a subfolder: listed over
    several pages."""
    made = {}

    def get(store):
        if store.name not in made:
            prefix = store.new_prefix("many")
            names = [f"k-{i:05d}.{'safetensors' if i % 2 == 0 else 'json'}"
                     for i in range(MANY_KEYS)]
            with ThreadPoolExecutor(max_workers=16) as pool:
                list(pool.map(lambda n: prefix.put(n, n.encode()), names + ["sub/nested.txt"]))
            made[store.name] = (prefix, names)
        return made[store.name]

    return get


def test_listing_more_than_a_thousand_keys(store, many_keys):
    prefix, names = many_keys(store)
    everything = tensorstream.list(prefix.uri, recursive=True)
    assert [e.path for e in everything] == sorted(names + ["sub/nested.txt"])
    assert all(e.size == len(e.path) for e in everything)
    top = tensorstream.list(prefix.uri)
    assert [(e.path, e.is_directory) for e in top][-1] == ("sub/", True)
    assert len(top) == MANY_KEYS + 1
    assert list_safetensors(prefix.uri) == [f"{prefix.uri}/{n}" for n in names
                                            if n.endswith(".safetensors")]
    if CLI:
        listed = cli_json("ls", "--recursive", prefix.uri)
        assert len(listed["entries"]) == MANY_KEYS + 1
        assert listed["total_bytes"] == sum(map(len, names)) + len("sub/nested.txt")


HOSTILE_KEYS = ["../escape.txt", "/abs.txt", "a//b.txt", "sub/../../up.txt", "./dot.txt", "..",
                "back\\slash.txt"]


def test_pull_never_writes_outside_the_destination(store, tmp_path):
    prefix = store.new_prefix("hostile")
    prefix.put("ok.txt", b"fine")
    for key in HOSTILE_KEYS:
        try:
            prefix.put(key, b"hostile")
        except Exception:  # noqa: BLE001 (a store may refuse such keys)
            pass
    # What the store kept: keys as given (hostile), or normalised by the store (SeaweedFS
    # turns "a//b.txt" into "a/b.txt"), which are then ordinary keys.
    listed = [e.path for e in tensorstream.list(prefix.uri, recursive=True)]
    hostile = [p for p in listed if p in HOSTILE_KEYS]
    if store.name == "gcs":
        # The emulator keeps keys as given, so every hostile key reaches the pull.
        assert sorted(hostile) == sorted(HOSTILE_KEYS)
    sandbox = tmp_path / "sandbox"
    dst = sandbox / "deep" / "dst"
    attempts = {"tensorstream.pull": lambda: tensorstream.pull(prefix.uri, dst)}
    if store.remote:  # the reference's pull_files refuses local paths, and so does ours
        attempts["pull_files"] = lambda: pull_files(prefix.uri, str(dst))
    if CLI:
        def pull_with_cli():
            result = cli("pull", prefix.uri, dst)
            if result.returncode != 0:
                raise RuntimeError(result.stderr)
        attempts["CLI pull"] = pull_with_cli
    for surface, attempt in attempts.items():
        sandbox.mkdir()
        try:
            attempt()
            assert not hostile, f"{surface} pulled {hostile}"
        except Exception as e:  # noqa: BLE001 (each surface raises its own class)
            assert hostile and "refusing to write" in str(e), (surface, e)
        written = sorted(str(p.relative_to(sandbox)) for p in sandbox.rglob("*") if p.is_file())
        # A pull with a hostile key writes nothing at all; otherwise exactly the listing.
        assert written == ([] if hostile else sorted(f"deep/dst/{p}" for p in listed)), surface
        assert not Path("/abs.txt").exists()
        shutil.rmtree(sandbox)
    # The safe key alone is pulled fine when the hostile ones are filtered out.
    assert tensorstream.pull(prefix.uri, dst, include=["ok.txt"]) == ["ok.txt"]
    assert read_tree(sandbox) == {"deep/dst/ok.txt": b"fine"}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when this returns: nothing listens there


def test_a_wrong_endpoint_fails_fast_naming_it(remote_store, shards, monkeypatch):
    uri = remote_store.new_prefix("endpoint").upload("model.safetensors", shards[0])
    port = _closed_port()
    env = remote_store.endpoint_env(port)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    start = time.monotonic()
    with pytest.raises(tensorstream.UnavailableError) as error:
        tensorstream.load(uri)
    assert f"127.0.0.1:{port}" in str(error.value) and uri in str(error.value)
    if CLI:
        line = cli_error("stream", uri, timeout=120)
        assert f"127.0.0.1:{port}" in line and "cannot reach" in line, line
    assert time.monotonic() - start < 120


def test_fault_proxy_cuts_storms_and_stalls_end_byte_exact(remote_store, proxies, dtypes_file,
                                                          tmp_path, monkeypatch):
    prefix = remote_store.new_prefix("faults")
    uri = prefix.upload("all.safetensors", dtypes_file)
    prefix.put("always-503.bin", b"x" * 1000)
    proxy = proxies.get(remote_store, "faults")
    for name, value in remote_store.endpoint_env(proxy.port).items():
        monkeypatch.setenv(name, value)
    # 1 MiB chunks: with the retries of cut replies, each pass goes through the proxy's
    # whole plan a few times. A stall is detected after 2 s instead of 10.
    monkeypatch.setenv("RUNAI_STREAMER_CHUNK_BYTESIZE", str(1 << 20))
    monkeypatch.setenv("TENSORSTREAM_HTTP_STALL_SECONDS", "2")
    start = time.monotonic()
    check_same(stream_dropin([uri]), reference(dtypes_file))
    if CLI:
        pulled = cli_json("pull", "--include", "*.safetensors", "--chunk-bytes", 1 << 20,
                          prefix.uri, tmp_path / "dst")
        assert pulled["files"] == 1
        assert (tmp_path / "dst" / "all.safetensors").read_bytes() == dtypes_file.read_bytes()
    assert time.monotonic() - start < 240, "the faults took too long to get through"
    # A storm that never ends runs out the retry budget (shortened here from 60 s) with the
    # server's words.
    monkeypatch.setenv("TENSORSTREAM_HTTP_RETRY_BUDGET_MS", "4000")
    start = time.monotonic()
    with pytest.raises(tensorstream.UnavailableError) as error:
        tensorstream.download(f"{prefix.uri}/always-503.bin", tmp_path, "x.bin")
    message = str(error.value)
    assert "503" in message and "always-503.bin" in message and "attempts" in message
    assert time.monotonic() - start < 30
    assert not (tmp_path / "x.bin").exists()
