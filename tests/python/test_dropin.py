"""The runai_model_streamer drop-in: the seed's quickstart, vLLM's usage, FileStreamer."""
from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import runai_model_streamer
from runai_model_streamer import (
    FileChunks,
    FileStreamer,
    ObjectStorageModel,
    S3Credentials,
    SafetensorsStreamer,
    list_safetensors,
    pull_files,
)

from conftest import assert_same, reference

# The quickstart code of the seed document (shared/seeds/000_716cd48c7bc4d1f3.txt),
# copied byte for byte; test_seed_copy_is_verbatim checks it when the seed is at hand.
SEED_QUICKSTART = Path(__file__).with_name("seed_quickstart.py")
_ROOT = Path(__file__).resolve().parents[2]
SEED = next((p for p in (_ROOT / "shared", _ROOT.parent / "shared")
             if (p / "seeds").is_dir()), _ROOT / "shared") / "seeds" / "000_716cd48c7bc4d1f3.txt"


def test_public_names_match_the_reference():
    assert sorted(runai_model_streamer.__all__) == sorted(
        ["SafetensorsStreamer", "ObjectStorageModel", "DistributedStreamer", "FileStreamer",
         "FileChunks", "list_safetensors", "pull_files"])
    for name in runai_model_streamer.__all__:
        assert hasattr(runai_model_streamer, name)


DEEP_NAMES = {
    "runai_model_streamer.s3_utils.s3_utils": ["S3Credentials", "is_s3_path", "is_gs_path",
                                               "is_azure_path", "filter_allow", "filter_ignore",
                                               "removeprefix"],
    "runai_model_streamer.safetensors_streamer.safetensors_streamer": [
        "SafetensorsStreamer", "ObjectStorageModel", "list_safetensors", "pull_files"],
    "runai_model_streamer.safetensors_streamer.safetensors_pytorch": [
        "prepare_request", "SafetensorMetadata", "SafetensorsMetadata", "Offsets",
        "get_safetensors_dtype_map", "safetensors_to_torch_dtype", "create_torch_tensor",
        "requires_alignment_copy", "element_size_of"],
    "runai_model_streamer.safetensors_streamer.streamer_mock": ["StreamerPatcher"],
    "runai_model_streamer.file_streamer.file_streamer": [
        "FileStreamer", "RunaiStreamerInvalidInputException", "host_or_device"],
    "runai_model_streamer.file_streamer.requests_iterator": [
        "FileChunks", "RunaiStreamerMemoryLimitException", "MemoryCapMode"],
    "runai_model_streamer.distributed_streamer.distributed_streamer": ["DistributedStreamer"],
}


@pytest.mark.parametrize("module", sorted(DEEP_NAMES))
def test_deep_module_paths_of_users_and_vllm(module):
    import importlib

    loaded = importlib.import_module(module)
    for name in DEEP_NAMES[module]:
        assert hasattr(loaded, name), f"{module}.{name}"


def test_importing_needs_neither_torch_nor_credentials():
    code = ("import sys, runai_model_streamer, runai_model_streamer.safetensors_streamer."
            "safetensors_pytorch, runai_model_streamer.safetensors_streamer.streamer_mock; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    result = subprocess.run([sys.executable, "-c", code], env={**env, "HOME": "/nonexistent"},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_seed_quickstart_runs_verbatim(tmp_path):
    code = SEED_QUICKSTART.read_text()
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Successfully started streaming." in result.stdout
    assert "Streamer context closed." in result.stdout
    assert "An error occurred" not in result.stdout, result.stdout


@pytest.mark.skipif(not SEED.is_file(), reason="the seed document is not beside this checkout")
def test_seed_copy_is_verbatim():
    assert SEED_QUICKSTART.read_text() == json.loads(SEED.read_text())["quickstart"]["code"]


def vllm_iterator(files):
    """vLLM's runai_safetensors_weights_iterator, reduced to what touches the streamer."""
    with SafetensorsStreamer() as streamer:
        streamer.stream_files(files, device="cpu", is_distributed=False)
        total_tensors = sum(len(tensors_meta)
                            for tensors_meta in streamer.files_to_tensors_metadata.values())
        yield total_tensors
        yield from streamer.get_tensors()


@pytest.mark.parametrize("limit", ["-1", "0", "60000"])
def test_vllm_pattern_keeps_every_tensor_intact(model_files, limit, monkeypatch):
    expected = {}
    for path in model_files:
        expected.update(reference(path))
    kept = {}
    with SafetensorsStreamer() as streamer:
        # vLLM sets the limit in os.environ just before streaming.
        monkeypatch.setenv("RUNAI_STREAMER_MEMORY_LIMIT", limit)
        streamer.stream_files(model_files, device="cpu", is_distributed=False)
        total = sum(len(meta) for meta in streamer.files_to_tensors_metadata.values())
        for name, tensor in streamer.get_tensors():
            assert name not in kept
            kept[name] = tensor
    assert total == len(expected) == len(kept)
    gc.collect()
    torch.randn(1 << 20)  # fresh allocations must not land in the kept tensors
    for name, tensor in expected.items():
        assert_same(kept[name], tensor, name)


def test_memory_limit_below_the_largest_tensor_fails_before_reading(model_files, monkeypatch):
    from runai_model_streamer.file_streamer.requests_iterator import (
        RunaiStreamerMemoryLimitException,
    )
    from tensorstream import MemoryLimitError

    with SafetensorsStreamer() as streamer:
        monkeypatch.setenv("RUNAI_STREAMER_MEMORY_LIMIT", "1000")
        with pytest.raises(RunaiStreamerMemoryLimitException) as error:
            streamer.stream_files(model_files)
    assert isinstance(error.value, MemoryLimitError)  # our class too
    assert "layers.0.mlp.up.weight" in str(error.value) and model_files[0] in str(error.value)


def test_files_to_tensors_metadata_describes_each_file(model_files):
    with SafetensorsStreamer() as streamer:
        streamer.stream_files(model_files)
        metadata = streamer.files_to_tensors_metadata
        assert sorted(metadata) == [0, 1, 2]
        for index, path in enumerate(model_files):
            expected = reference(path)
            entries = {entry.name: entry for entry in metadata[index]}
            assert sorted(entries) == sorted(expected)
            for name, tensor in expected.items():
                entry = entries[name]
                assert entry.get_torch_dtype() == tensor.dtype
                assert entry.shape == list(tensor.shape)
                assert entry.get_item_count() == tensor.numel()
                assert entry.get_bytesize() == tensor.numel() * tensor.element_size()
                assert entry.get_element_size() == tensor.element_size()
                assert entry.get_storage_shape() == list(tensor.shape)
            offsets = sorted(entry.offsets.start for entry in metadata[index])
            assert offsets[0] == 0
        assert len(list(streamer.get_tensors())) == sum(len(m) for m in metadata.values())


def test_old_vllm_pattern_streams_files_one_after_another(model_files):
    results = {}
    with SafetensorsStreamer() as streamer:
        for path in model_files:
            streamer.stream_file(path)
            results.update(streamer.get_tensors())
    for path in model_files:
        for name, tensor in reference(path).items():
            assert_same(results[name], tensor, name)


def test_tensors_stay_valid_after_the_streamer_closes(model_files, monkeypatch):
    monkeypatch.setenv("RUNAI_STREAMER_MEMORY_LIMIT", "0")
    with SafetensorsStreamer() as streamer:
        streamer.stream_files(model_files)
        iterator = streamer.get_tensors()
        first_name, first = next(iterator)
    del streamer, iterator
    gc.collect()
    expected = {}
    for path in model_files:
        expected.update(reference(path))
    assert_same(first, expected[first_name], first_name)


def test_get_tensors_before_stream_files_raises():
    with SafetensorsStreamer() as streamer:
        with pytest.raises(RuntimeError, match="stream_files"):
            list(streamer.get_tensors())


def test_explicit_credentials_are_accepted(model_files):
    credentials = S3Credentials(access_key_id="AKID", secret_access_key="very-secret",
                                session_token=None, region_name="us-east-1",
                                endpoint="http://127.0.0.1:9")
    assert "very-secret" not in repr(credentials)
    with SafetensorsStreamer() as streamer:
        streamer.stream_files(model_files[:1], s3_credentials=credentials)
        assert len(list(streamer.get_tensors())) == len(reference(model_files[0]))



@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_fails_before_any_tensor_is_read(model_files):
    from tensorstream import UnavailableError

    with SafetensorsStreamer() as streamer:
        # RuntimeError, as torch raises in the reference (there while iterating; here
        # before anything but the headers was read).
        with pytest.raises(RuntimeError, match="CUDA") as error:
            streamer.stream_files(model_files, device="cuda")
    assert isinstance(error.value, UnavailableError)


def test_unknown_device_is_rejected(model_files):
    from runai_model_streamer.file_streamer.file_streamer import RunaiStreamerInvalidInputException

    with SafetensorsStreamer() as streamer:
        with pytest.raises(RunaiStreamerInvalidInputException, match="tpu"):
            streamer.stream_files(model_files, device="tpu")


def test_pathlib_paths_are_accepted(model_files):
    with SafetensorsStreamer() as streamer:
        streamer.stream_files([Path(p) for p in model_files])
        assert len(list(streamer.get_tensors())) == sum(len(reference(p)) for p in model_files)


def test_tensor_names_read_only_the_selected_bytes(tmp_path):
    big = torch.zeros(1 << 20, dtype=torch.uint8)
    path = str(tmp_path / "m.safetensors")
    import safetensors.torch

    safetensors.torch.save_file({"a": torch.arange(4.0), "big": big, "z": torch.ones(3)}, path)
    with SafetensorsStreamer() as streamer:
        streamer.stream_file(path, tensor_names=["z", "a"])
        assert [m.name for m in streamer.files_to_tensors_metadata[0]] == ["a", "z"]
        got = dict(streamer.get_tensors())
        read, _ = streamer._stream.stats()
    assert sorted(got) == ["a", "z"]
    assert torch.equal(got["a"], torch.arange(4.0)) and torch.equal(got["z"], torch.ones(3))
    assert read < big.numel() // 2  # the unselected megabyte was not read


@pytest.mark.parametrize("limit", ["-1", "0"])
def test_owned_tensors_survive_the_file_being_rewritten_or_truncated(tmp_path, limit,
                                                                     monkeypatch):
    import safetensors.torch

    monkeypatch.setenv("RUNAI_STREAMER_MEMORY_LIMIT", limit)
    path = tmp_path / "m.safetensors"
    original = {"w": torch.arange(1 << 16, dtype=torch.float32), "b": torch.ones(100)}
    safetensors.torch.save_file(original, str(path))
    with SafetensorsStreamer() as streamer:
        streamer.stream_file(str(path))  # owned=True, the default
        loaded = dict(streamer.get_tensors())
    size = path.stat().st_size
    with open(path, "r+b") as f:  # rewritten in place, same size
        f.seek(size - 4096)
        f.write(b"\xff" * 4096)
    for name, tensor in original.items():
        assert torch.equal(loaded[name], tensor), name
    with open(path, "wb"):  # truncated, as open('wb') does before re-saving
        pass
    for name, tensor in original.items():  # would fault (SIGBUS) on a mapping of the file
        assert torch.equal(loaded[name], tensor), name


def test_tensors_at_unaligned_offsets_are_aligned_copies(tmp_path):
    import struct

    header = json.dumps({"odd": {"dtype": "U8", "shape": [3], "data_offsets": [0, 3]},
                         "f32": {"dtype": "F32", "shape": [4], "data_offsets": [3, 19]}}).encode()
    data = bytes([1, 2, 3]) + struct.pack("<4f", 1.5, -2.0, 3.25, 0.0)
    path = tmp_path / "odd.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)
    for owned in (True, False):
        with SafetensorsStreamer() as streamer:
            streamer.stream_file(str(path), owned=owned)
            got = dict(streamer.get_tensors())
        assert got["f32"].data_ptr() % 4 == 0
        assert got["f32"].tolist() == [1.5, -2.0, 3.25, 0.0]
        assert got["odd"].tolist() == [1, 2, 3]


def test_throughput_is_logged_at_info(model_files, caplog):
    with caplog.at_level("INFO", logger="runai_model_streamer"):
        with SafetensorsStreamer() as streamer:
            streamer.stream_files(model_files)
            list(streamer.get_tensors())
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("runai_model_streamer")]
    assert any(line.startswith("[RunAI Streamer] Overall time to stream") and "of all files to cpu"
               in line and "/s" in line for line in lines), lines


def test_log_to_stderr_gives_the_logger_a_handler(model_files):
    code = ("from runai_model_streamer import SafetensorsStreamer\n"
            "import sys\n"
            "with SafetensorsStreamer() as s:\n"
            "    s.stream_files(sys.argv[1:])\n"
            "    list(s.get_tensors())\n")
    result = subprocess.run([sys.executable, "-c", code, *model_files], capture_output=True,
                            text=True, timeout=120,
                            env={**os.environ, "RUNAI_STREAMER_LOG_TO_STDERR": "1"})
    assert result.returncode == 0, result.stderr
    assert "[INFO] [RunAI Streamer] Overall time to stream" in result.stderr


@pytest.fixture
def data_files(tmp_path):
    paths = []
    for i in range(2):
        path = tmp_path / f"data{i}.bin"
        path.write_bytes(os.urandom(300_000 + i))
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("owned, limit", [(True, None), (False, None), (True, 350_000)])
def test_file_streamer_yields_each_range_once_with_its_bytes(data_files, owned, limit):
    requests = [FileChunks(7, data_files[0], [13, 113, 113, 200_000, 0], [100, 0, 65536, 1, 200_000]),
                FileChunks.contiguous(3, data_files[1], 0, [1, 300_000])]
    assert requests[0].total_size() == 265_637
    assert requests[0].max_chunk_size() == 200_000
    assert requests[1].offsets == [0, 1]
    expected = {}
    for request in requests:
        content = Path(request.path).read_bytes()
        for index, (offset, size) in enumerate(zip(request.offsets, request.sizes)):
            expected[(request.id, index)] = content[offset:offset + size]
    seen = {}
    with FileStreamer() as streamer:
        streamer.stream_files(requests, memory_limit=limit, owned=owned)
        for file_id, chunk_index, tensor in streamer.get_chunks():
            assert (file_id, chunk_index) not in seen
            assert tensor.dtype == torch.uint8
            assert tuple(tensor.shape) == (1, len(expected[(file_id, chunk_index)]))
            seen[(file_id, chunk_index)] = tensor
    assert sorted(seen) == sorted(expected)
    for key, data in expected.items():
        assert seen[key].numpy().tobytes() == data


def test_file_streamer_reports_unreadable_files_while_iterating(data_files):
    with FileStreamer() as streamer:
        streamer.stream_files([FileChunks(0, data_files[0], [299_990], [100])])
        with pytest.raises(ValueError) as error:
            list(streamer.get_chunks())
    assert data_files[0] in str(error.value)


def test_file_streamer_lists_files(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.safetensors").write_bytes(b"12")
    (tmp_path / "sub" / "b.json").write_bytes(b"123")
    every = FileStreamer().list_files(str(tmp_path))
    assert sorted(every) == [(str(tmp_path / "a.safetensors"), 2), (str(tmp_path / "sub/b.json"), 3)]
    assert FileStreamer().list_files(str(tmp_path), is_recursive=False) == [
        (str(tmp_path / "a.safetensors"), 2)]
    assert FileStreamer().list_files(str(tmp_path), ignore_patterns=["*.json"]) == [
        (str(tmp_path / "a.safetensors"), 2)]


def test_distributed_streamer_falls_back_without_a_group(model_files, monkeypatch, caplog):
    from runai_model_streamer import DistributedStreamer

    streamer = DistributedStreamer()
    assert streamer.get_group_size() == 1
    assert streamer.ring_info() is None
    with caplog.at_level("INFO", logger="runai_model_streamer"):
        streamer.set_is_distributed(True, "cpu")
    assert streamer.is_distributed is False
    assert any("not initialized" in r.getMessage() for r in caplog.records)
    monkeypatch.setenv("RUNAI_STREAMER_DIST", "2")
    with pytest.raises(ValueError, match="RUNAI_STREAMER_DIST"):
        streamer.set_is_distributed(True, "cpu")


def test_list_safetensors_lists_a_local_directory(tmp_path, model_files):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "nested.safetensors").write_bytes(b"")
    assert list_safetensors(str(tmp_path)) == sorted(model_files)


def test_azure_without_an_account_says_what_to_set(tmp_path, monkeypatch):
    # s3://, gs:// and az:// run against real servers in tests/stores.
    for name in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_NAME"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="az://bucket/model.*AZURE_STORAGE_ACCOUNT_NAME"):
        list_safetensors("az://bucket/model")
    with pytest.raises(ValueError, match="AZURE_STORAGE_ACCOUNT_NAME"):
        pull_files("az://bucket/model", str(tmp_path / "dst"))
    assert not (tmp_path / "dst").exists()


def test_pull_files_rejects_local_paths(tmp_path):
    with pytest.raises(NotImplementedError, match="file system"):
        pull_files(str(tmp_path), str(tmp_path / "dst"))


def test_object_storage_model_downloads_once(tmp_path, monkeypatch):
    import runai_model_streamer.safetensors_streamer.safetensors_streamer as module

    pulls = []

    def fake_pull(model_path, dst, allow_pattern, ignore_pattern, credentials):
        pulls.append((model_path, allow_pattern))
        Path(dst, "model.safetensors").write_bytes(b"x")

    monkeypatch.setattr(module, "pull_files", fake_pull)
    dst = str(tmp_path / "cache")
    with pytest.raises(RuntimeError):  # a failed download leaves no completion marker
        with ObjectStorageModel(model_path="s3://bucket/model", dst=dst) as model:
            model.pull_files(allow_pattern=["*.safetensors"])
            raise RuntimeError("interrupted")
    for _ in range(2):
        with ObjectStorageModel(model_path="s3://bucket/model", dst=dst) as model:
            model.pull_files(allow_pattern=["*.safetensors"])
    assert pulls == [("s3://bucket/model/", ["*.safetensors"])] * 2
    assert sorted(os.listdir(dst)) == [ObjectStorageModel.SENTINEL_NAME, "model.safetensors"]
    assert ObjectStorageModel.SENTINEL_NAME == ".runai_complete"


def test_object_storage_model_requires_an_object_store_uri(tmp_path):
    with pytest.raises(ValueError, match="object storage path"):
        ObjectStorageModel(model_path=str(tmp_path), dst=str(tmp_path / "dst"))


def test_streamer_patcher_redirects_a_bucket_to_a_directory(tmp_path, model_files):
    from runai_model_streamer.safetensors_streamer.streamer_mock import StreamerPatcher

    bucket = Path(model_files[0]).parent
    patcher = StreamerPatcher(str(bucket))
    uris = patcher.shim_list_safetensors("s3://bucket/")
    assert uris == sorted(f"s3://bucket/{Path(p).name}" for p in model_files)
    with patcher.create_mock_streamer() as streamer:
        streamer.stream_files(uris, tensor_names=["layers.1.norm.weight"])
        assert [m.name for m in streamer.files_to_tensors_metadata[1]] == ["layers.1.norm.weight"]
        (name, tensor), = list(streamer.get_tensors())
    assert_same(tensor, reference(model_files[1])[name], name)
    patcher.shim_pull_files("gs://bucket/", str(tmp_path / "pulled"), allow_pattern=["*-00001-*"])
    assert os.listdir(tmp_path / "pulled") == [Path(model_files[1]).name]


def test_installed_over_the_reference_it_warns_and_says_how_to_keep_one(tmp_path):
    """pip lets this package and runai-model-streamer overwrite each other's
    runai_model_streamer files; installed over the reference (whose libstreamer/ stays),
    importing ours warns instead of shadowing it silently."""
    import shutil

    package = tmp_path / "runai_model_streamer"
    shutil.copytree(Path(runai_model_streamer.__file__).parent, package)
    check = ("import warnings; warnings.simplefilter('error', RuntimeWarning); "
             "import runai_model_streamer")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    clean = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True,
                           text=True)
    assert clean.returncode == 0, clean.stderr
    (package / "libstreamer" / "lib").mkdir(parents=True)  # what the reference leaves
    mixed = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True,
                           text=True)
    assert mixed.returncode != 0
    assert "runai-model-streamer is installed in the same environment" in mixed.stderr
    assert "pip uninstall runai-model-streamer" in mixed.stderr
