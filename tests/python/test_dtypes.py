"""Exact dtypes and shapes: every SafeTensors dtype against safetensors.safe_open."""
from __future__ import annotations

import pytest
import torch

import tensorstream
from runai_model_streamer import SafetensorsStreamer

from conftest import assert_same, random_tensor, reference, save

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64,
          torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool, torch.complex64,
          torch.uint16, torch.uint32, torch.uint64, torch.float8_e4m3fn, torch.float8_e5m2,
          torch.float8_e8m0fnu]
SHAPES = [(), (0,), (0, 3), (1,), (3, 5), (2, 3, 4)]
# float4_e2m1fn_x2 packs two values per byte: the file's last dimension is twice torch's.
F4_SHAPES = [(1,), (3, 5), (2, 3, 4), (0, 4)]


@pytest.fixture(scope="module")
def all_dtypes_file(tmp_path_factory):
    g = torch.Generator().manual_seed(7)
    tensors = {}
    for dtype in DTYPES:
        for shape in SHAPES:
            tensors[f"{dtype}-{shape}"] = random_tensor(dtype, shape, g)
    for shape in F4_SHAPES:
        raw = random_tensor(torch.uint8, shape, g)
        tensors[f"f4-{shape}"] = raw.view(torch.float4_e2m1fn_x2)
    return save(tensors, tmp_path_factory.mktemp("dtypes") / "all.safetensors")


def test_dropin_matches_safe_open_for_every_dtype(all_dtypes_file):
    expected = reference(all_dtypes_file)
    with SafetensorsStreamer() as streamer:
        streamer.stream_file(all_dtypes_file)
        actual = dict(streamer.get_tensors())
    assert sorted(actual) == sorted(expected)
    for name, tensor in expected.items():
        assert_same(actual[name], tensor, name)


def test_native_load_matches_safe_open_for_every_dtype(all_dtypes_file):
    expected = reference(all_dtypes_file)
    actual = tensorstream.load(all_dtypes_file)
    assert sorted(actual) == sorted(expected)
    for name, tensor in expected.items():
        assert_same(actual[name], tensor, name)


def test_f4_file_shape_has_twice_the_last_dimension(all_dtypes_file):
    infos = {info.name: info for info in tensorstream.inspect(all_dtypes_file)}
    assert infos["f4-(3, 5)"].dtype == "F4"
    assert infos["f4-(3, 5)"].shape == (3, 10)
    assert infos["torch.bfloat16-()"].shape == ()


def test_numpy_output_has_the_same_bytes(all_dtypes_file):
    np = pytest.importorskip("numpy")
    expected = reference(all_dtypes_file)
    arrays = tensorstream.load(all_dtypes_file, framework="np")
    for name, tensor in expected.items():
        array = arrays[name]
        assert isinstance(array, np.ndarray)
        assert array.tobytes() == tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        assert array.shape == tuple(tensor.shape), name
    assert arrays["torch.float32-(3, 5)"].dtype == np.float32
    assert arrays["torch.complex64-(3, 5)"].dtype == np.complex64
    assert arrays["f4-(3, 5)"].dtype == np.uint8


def test_numpy_dtypes_without_ml_dtypes(all_dtypes_file):
    np = pytest.importorskip("numpy")
    try:
        import ml_dtypes  # noqa: F401
        pytest.skip("ml_dtypes is installed")
    except ImportError:
        pass
    arrays = tensorstream.load(all_dtypes_file, framework="np")
    assert arrays["torch.bfloat16-(3, 5)"].dtype == np.uint16
    assert arrays["torch.float8_e4m3fn-(3, 5)"].dtype == np.uint8
    assert arrays["torch.float8_e8m0fnu-(3, 5)"].dtype == np.uint8


def test_numpy_dtypes_with_ml_dtypes(all_dtypes_file):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    arrays = tensorstream.load(all_dtypes_file, framework="np")
    assert arrays["torch.bfloat16-(3, 5)"].dtype == ml_dtypes.bfloat16
    assert arrays["torch.float8_e5m2-(3, 5)"].dtype == ml_dtypes.float8_e5m2
