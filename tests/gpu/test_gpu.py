"""GPU tests, run on a machine with CUDA by bench/gpu_check.sh (CI has no GPU; the same
pipeline logic runs in CI against FakeCuda in tests/unit/device_stream_test.cc).

Every tensor streamed to the GPU must equal safetensors' load_file(device="cuda") byte for
byte, through the native API and the drop-in, for every dtype, with and without memory
limits and name filters."""
import os
import subprocess

import pytest
import torch
from safetensors.torch import load_file, save_file

import tensorstream
from runai_model_streamer import SafetensorsStreamer

DEVICE = "cuda:0"


def as_bytes(t):
    return t.contiguous().view(-1).view(torch.uint8) if t.numel() else torch.empty(0, dtype=torch.uint8)


def same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.device == b.device and \
        torch.equal(as_bytes(a), as_bytes(b))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    g = torch.Generator().manual_seed(0)
    tensors = {}
    for i, dtype in enumerate([torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64,
                               torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool,
                               torch.complex64, torch.uint16, torch.uint32, torch.uint64,
                               torch.float8_e4m3fn, torch.float8_e5m2, torch.float8_e8m0fnu]):
        raw = torch.randint(0, 256, (37 * 8 * 8,), dtype=torch.uint8, generator=g)
        tensors[f"t{i}"] = raw.view(dtype).reshape(37, -1).clone() if dtype.itemsize <= 8 else raw
    tensors["big"] = torch.randn(3000, 2048, generator=g)  # ~24 MB: many chunks
    tensors["empty"] = torch.empty(0, 5)
    tensors["scalar"] = torch.tensor(3.5)
    for i in range(2000):
        tensors[f"tiny.{i}"] = torch.randn(i % 7 + 1, generator=g).half()
    path = tmp_path_factory.mktemp("gpu") / "model.safetensors"
    save_file(tensors, str(path))
    return str(path)


@pytest.mark.parametrize("memory_limit", [-1, 0, 8 << 20])
def test_native_load_equals_load_file(model, memory_limit):
    expected = load_file(model, device=DEVICE)
    got = tensorstream.load(model, device=DEVICE, memory_limit=memory_limit)
    assert got.keys() == expected.keys()
    for name, tensor in expected.items():
        assert same(got[name], tensor), name


def test_dropin_stream_files_on_device(model, monkeypatch):
    monkeypatch.setenv("RUNAI_STREAMER_MEMORY_LIMIT", "0")
    expected = load_file(model, device=DEVICE)
    seen = {}
    with SafetensorsStreamer() as streamer:
        streamer.stream_files([model, model], device=DEVICE)
        assert sum(len(v) for v in streamer.files_to_tensors_metadata.values()) == 2 * len(expected)
        for name, tensor in streamer.get_tensors():
            assert same(tensor, expected[name]), name
            seen[name] = seen.get(name, 0) + 1
    assert seen == {name: 2 for name in expected}


def test_name_filter_reads_only_those(model):
    got = tensorstream.load(model, device=DEVICE, names=["big", "t3"])
    expected = load_file(model, device=DEVICE)
    assert set(got) == {"big", "t3"}
    assert same(got["big"], expected["big"]) and same(got["t3"], expected["t3"])


def test_cli_streams_to_the_gpu(model):
    cli = os.environ.get("TENSORSTREAM_CLI", "build/tensorstream")
    out = subprocess.run([cli, "stream", "--device", "cuda:0", "--json", model],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert '"device": "cuda:0"' in out.stdout


def test_device_tensors_own_their_memory_and_free_it(model, tmp_path):
    """Every file in one stream; the tensors are the library's device memory handed to
    torch through __cuda_array_interface__: intact after a collection, freed with them."""
    import gc

    second = tmp_path / "second.safetensors"
    save_file({"other": torch.randn(4096, 1024)}, str(second))
    expected = {**load_file(model, device=DEVICE), **load_file(str(second), device=DEVICE)}
    torch.cuda.synchronize()
    free_before, _ = torch.cuda.mem_get_info()
    got = tensorstream.load([model, str(second)], device=DEVICE)
    gc.collect()
    torch.cuda.synchronize()
    for name, tensor in expected.items():
        assert same(got[name], tensor), name
    free_loaded, _ = torch.cuda.mem_get_info()
    model_bytes = sum(t.numel() * t.element_size() for t in expected.values())
    assert free_before - free_loaded >= model_bytes * 0.9
    del got, tensor
    gc.collect()
    torch.cuda.synchronize()
    free_after, _ = torch.cuda.mem_get_info()
    assert free_after - free_loaded >= model_bytes * 0.9


def test_stream_with_a_device_memory_limit_and_a_consumer_that_drops(model):
    expected = load_file(model, device=DEVICE)
    seen = 0
    for name, tensor in tensorstream.stream(model, device=DEVICE, device_memory_limit=32 << 20):
        assert same(tensor, expected[name]), name
        seen += 1
    assert seen == len(expected)
