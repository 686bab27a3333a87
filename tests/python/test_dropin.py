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
    for name in ["SafetensorsStreamer", "ObjectStorageModel", "DistributedStreamer",
                 "FileStreamer", "FileChunks", "list_safetensors", "pull_files"]:
        assert name in runai_model_streamer.__all__
        assert hasattr(runai_model_streamer, name)


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
    from tensorstream import MemoryLimitError

    with SafetensorsStreamer() as streamer:
        monkeypatch.setenv("RUNAI_STREAMER_MEMORY_LIMIT", "1000")
        with pytest.raises(MemoryLimitError):
            streamer.stream_files(model_files)


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
def test_cuda_without_cuda_fails_before_any_read(tmp_path):
    from tensorstream import UnavailableError

    missing = str(tmp_path / "does-not-exist.safetensors")
    with SafetensorsStreamer() as streamer:
        # The device is checked first: the missing file is never opened.
        with pytest.raises(UnavailableError, match="CUDA"):
            streamer.stream_file(missing, device="cuda")
    with FileStreamer() as streamer:
        with pytest.raises(UnavailableError, match="cuda:1"):
            streamer.stream_files([FileChunks(0, missing, 0, [1])], device="cuda:1")


def test_unknown_device_is_rejected(model_files):
    with SafetensorsStreamer() as streamer:
        with pytest.raises(ValueError, match="tpu"):
            streamer.stream_files(model_files, device="tpu")


@pytest.fixture
def data_files(tmp_path):
    paths = []
    for i in range(2):
        path = tmp_path / f"data{i}.bin"
        path.write_bytes(os.urandom(300_000 + i))
        paths.append(str(path))
    return paths


def test_file_streamer_yields_each_range_once_with_its_bytes(data_files):
    requests = [FileChunks(7, data_files[0], 13, [100, 0, 65536, 1, 200_000]),
                FileChunks(3, data_files[1], 0, [300_001])]
    assert requests[0].total_size() == 265_637
    assert requests[0].max_chunk_size() == 200_000
    expected = {}
    for request in requests:
        content = Path(request.path).read_bytes()
        offset = request.offset
        for index, size in enumerate(request.chunks):
            expected[(request.id, index)] = content[offset:offset + size]
            offset += size
    seen = {}
    with FileStreamer() as streamer:
        streamer.stream_files(requests)
        for file_id, chunk_index, tensor in streamer.get_chunks():
            assert (file_id, chunk_index) not in seen
            assert tensor.dtype == torch.uint8
            assert tuple(tensor.shape) == (1, len(expected[(file_id, chunk_index)]))
            seen[(file_id, chunk_index)] = tensor
    assert sorted(seen) == sorted(expected)
    for key, data in expected.items():
        assert seen[key].numpy().tobytes() == data


def test_file_streamer_range_past_the_end_names_the_file(data_files):
    from tensorstream import TensorStreamError

    with FileStreamer() as streamer:
        with pytest.raises(TensorStreamError) as error:
            streamer.stream_files([FileChunks(0, data_files[0], 299_990, [100])])
            list(streamer.get_chunks())
    assert data_files[0] in str(error.value)


def test_list_safetensors_lists_a_local_directory(tmp_path, model_files):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "nested.safetensors").write_bytes(b"")
    assert list_safetensors(str(tmp_path)) == sorted(model_files)


def test_object_stores_other_than_s3_cannot_be_listed_yet(tmp_path):
    # s3:// listing and pulling run against a real server in tests/s3/test_python_s3.py.
    with pytest.raises(ValueError, match="'gs://'"):
        list_safetensors("gs://bucket/model")
    with pytest.raises(ValueError, match="'az://'"):
        pull_files("az://bucket/model", str(tmp_path / "dst"))
    assert not (tmp_path / "dst").exists()


def test_pull_files_rejects_local_paths(tmp_path):
    with pytest.raises(NotImplementedError, match="file system"):
        pull_files(str(tmp_path), str(tmp_path / "dst"))


def test_object_storage_model_downloads_once(tmp_path, monkeypatch):
    import runai_model_streamer._object_storage as object_storage

    pulls = []

    def fake_pull(model_path, dst, allow_pattern, ignore_pattern, credentials):
        pulls.append((model_path, allow_pattern))
        Path(dst, "model.safetensors").write_bytes(b"x")

    monkeypatch.setattr(object_storage, "pull_files", fake_pull)
    dst = str(tmp_path / "cache")
    with pytest.raises(RuntimeError):  # a failed download leaves no completion marker
        with ObjectStorageModel(model_path="s3://bucket/model", dst=dst) as model:
            model.pull_files(allow_pattern=["*.safetensors"])
            raise RuntimeError("interrupted")
    for _ in range(2):
        with ObjectStorageModel(model_path="s3://bucket/model", dst=dst) as model:
            model.pull_files(allow_pattern=["*.safetensors"])
    assert pulls == [("s3://bucket/model/", ["*.safetensors"])] * 2
    assert sorted(os.listdir(dst)) == [".runai_complete", "model.safetensors"]


def test_object_storage_model_requires_an_object_store_uri(tmp_path):
    with pytest.raises(ValueError, match="object-store"):
        ObjectStorageModel(model_path=str(tmp_path), dst=str(tmp_path / "dst"))
