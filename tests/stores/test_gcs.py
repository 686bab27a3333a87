"""GCS credentials end to end, on every surface: fake-gcs-server checks nothing, so the
requests go through the fault proxy in its authorizing mode, which hands out a bearer token
at POST /token and answers 401/403 to any request without exactly that token. The library
gets the token from an `authorized_user` credential file whose token_uri is the proxy's.
(The RS256 JWT exchange of service-account files is verified in tests/unit/gcs_test.cc.)
"""
from __future__ import annotations

import json
import os
import subprocess

import pytest

import tensorstream
from runai_model_streamer import SafetensorsStreamer, list_safetensors

from conftest import PROXY_TOKEN, _usable, assert_same, reference

CLI = os.environ.get("TENSORSTREAM_CLI")


@pytest.fixture
def gcs():
    return _usable("gcs")


@pytest.fixture
def authorized(gcs, proxies, tmp_path):
    """(credential file, endpoint URL of the authorizing proxy)."""
    proxy = proxies.get(gcs, "auth")
    credential_file = tmp_path / "adc.json"
    credential_file.write_text(json.dumps({
        "type": "authorized_user", "client_id": "test.apps.googleusercontent.com",
        "client_secret": "client-secret-never-shown", "refresh_token": "1//refresh-never-shown",
        "token_uri": f"http://127.0.0.1:{proxy.port}/token"}))
    return str(credential_file), f"http://127.0.0.1:{proxy.port}"


def _clear_emulator(monkeypatch):
    # An emulator variable means anonymous access; these tests name the endpoint instead.
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.delenv("CLOUD_STORAGE_EMULATOR_ENDPOINT", raising=False)
    monkeypatch.setenv("NO_GCE_CHECK", "true")  # never wait for a metadata server


def test_credential_file_from_the_environment(gcs, authorized, shards, monkeypatch):
    credential_file, endpoint = authorized
    prefix = gcs.new_prefix("auth")
    uri = prefix.upload("model.safetensors", shards[0])
    _clear_emulator(monkeypatch)
    settings = {"gcs.endpoint": endpoint}
    # No credentials: the proxy refuses, and the error says what was tried.
    monkeypatch.setenv("HOME", str(shards[0].parent))
    with pytest.raises(tensorstream.TensorStreamError) as error:
        tensorstream.load(uri, storage=settings)
    assert "credentials" in str(error.value)
    for variable in ("RUNAI_STREAMER_GCS_CREDENTIAL_FILE", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.setenv(variable, credential_file)
        got = tensorstream.load(uri, storage=settings)
        for name, tensor in reference(shards[0]).items():
            assert_same(got[name], tensor, name)
        assert [e.uri for e in tensorstream.list(prefix.uri, storage=settings)] == [uri]
        monkeypatch.delenv(variable)


def test_credential_file_as_a_setting_on_every_surface(gcs, authorized, shards, tmp_path,
                                                       monkeypatch):
    credential_file, endpoint = authorized
    prefix = gcs.new_prefix("auth")
    uri = prefix.upload("model.safetensors", shards[0])
    _clear_emulator(monkeypatch)
    settings = {"gcs.endpoint": endpoint, "gcs.credential_file": credential_file}
    expected = reference(shards[0])
    got = tensorstream.load(uri, storage=settings)
    for name, tensor in expected.items():
        assert_same(got[name], tensor, name)
    assert tensorstream.pull(prefix.uri, tmp_path / "dst", storage=settings) == [
        "model.safetensors"]
    assert (tmp_path / "dst" / "model.safetensors").read_bytes() == shards[0].read_bytes()
    # The drop-in has no GCS argument (as in the reference): the environment names both
    # (a credential file wins over the anonymous access an emulator endpoint implies).
    monkeypatch.setenv("RUNAI_STREAMER_GCS_CREDENTIAL_FILE", credential_file)
    monkeypatch.setenv("CLOUD_STORAGE_EMULATOR_ENDPOINT", endpoint)
    assert list_safetensors(prefix.uri) == [uri]
    with SafetensorsStreamer() as streamer:
        streamer.stream_files([uri])
        got = {name: tensor.clone() for name, tensor in streamer.get_tensors()}
    for name, tensor in expected.items():
        assert_same(got[name], tensor, name)
    monkeypatch.delenv("CLOUD_STORAGE_EMULATOR_ENDPOINT")
    monkeypatch.delenv("RUNAI_STREAMER_GCS_CREDENTIAL_FILE")
    if CLI:
        env = {k: v for k, v in os.environ.items() if "EMULATOR" not in k}
        args = ["--set", f"gcs.endpoint={endpoint}", "--set", f"gcs.credential_file={credential_file}"]
        result = subprocess.run([CLI, "stream", "--json", *args, uri], capture_output=True,
                                text=True, timeout=60, env=env)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["tensors"] == len(expected)
        result = subprocess.run([CLI, "ls", *args[:2], uri], capture_output=True, text=True,
                                timeout=60, env=env)
        assert result.returncode == 1
        assert "credentials" in result.stderr and "never-shown" not in result.stderr


def test_anonymous_requests_are_refused_by_an_authorizing_server(gcs, authorized, shards,
                                                                  monkeypatch):
    _, endpoint = authorized
    uri = gcs.new_prefix("anonymous").upload("model.safetensors", shards[0])
    _clear_emulator(monkeypatch)
    monkeypatch.setenv("CLOUD_STORAGE_EMULATOR_ENDPOINT", endpoint)  # no file: anonymous
    with pytest.raises(Exception) as error:  # noqa: B017 (the reference's class)
        with SafetensorsStreamer() as streamer:
            streamer.stream_files([uri])
    assert "401" in str(error.value) and uri in str(error.value)
    with pytest.raises(tensorstream.PermissionDeniedError):
        tensorstream.load(uri)
