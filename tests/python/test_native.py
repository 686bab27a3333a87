"""The native API: tensorstream.load / stream / inspect / Stream."""
from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import tensorstream
from conftest import assert_same, random_tensor, reference, save


def all_reference(paths):
    expected = {}
    for path in paths:
        expected.update(reference(path))
    return expected


def test_load_single_path_and_list(model_files):
    assert sorted(tensorstream.load(model_files[0])) == sorted(reference(model_files[0]))
    loaded = tensorstream.load(model_files, concurrency=2, chunk_bytes=8192, memory_limit=0)
    expected = all_reference(model_files)
    for name, tensor in expected.items():
        assert_same(loaded[name], tensor, name)


def test_names_filter_reads_only_those_tensors(model_files):
    wanted = ["layers.0.attn.q.weight", "layers.2.empty", "layers.1.scale"]
    loaded = tensorstream.load(model_files, names=wanted)
    assert sorted(loaded) == sorted(wanted)
    expected = all_reference(model_files)
    for name in wanted:
        assert_same(loaded[name], expected[name], name)


def test_unknown_name_is_not_found(model_files):
    with pytest.raises(tensorstream.NotFoundError, match="no.such.tensor"):
        tensorstream.stream(model_files, names=["layers.0.norm.weight", "no.such.tensor"])


def test_duplicate_names_across_files_are_rejected_by_load(tmp_path, model_files):
    copy = str(tmp_path / "copy.safetensors")
    save(reference(model_files[0]), copy)
    with pytest.raises(ValueError, match="layers.0"):
        tensorstream.load([model_files[0], copy])
    # stream() yields both: a dict is not involved.
    assert len(list(tensorstream.stream([model_files[0], copy]))) == 2 * len(reference(copy))


def test_stream_yields_in_completion_order_and_closes(model_files):
    iterator = tensorstream.stream(model_files, progress=True)
    names = [name for name, _ in iterator]
    assert sorted(names) == sorted(all_reference(model_files))


def test_tensors_outlive_the_stream_and_memory_is_not_reused(model_files):
    expected = all_reference(model_files)
    stream = tensorstream.stream(model_files, memory_limit=0)
    kept = dict(stream)
    del stream
    gc.collect()
    scratch = [torch.full((1 << 16,), 7.0) for _ in range(32)]
    for name, tensor in expected.items():
        assert_same(kept[name], tensor, name)
    del scratch


def test_inspect_reads_the_header(model_files):
    infos = tensorstream.inspect(model_files[1])
    by_name = {info.name: info for info in infos}
    assert by_name["layers.1.attn.q.weight"].dtype == "BF16"
    assert by_name["layers.1.attn.q.weight"].shape == (64, 64)
    assert by_name["layers.1.attn.q.weight"].nbytes == 64 * 64 * 2
    assert [info.offset for info in infos] == sorted(info.offset for info in infos)


def test_stream_object_exposes_the_c_api(tmp_path):
    import safetensors.torch

    path = str(tmp_path / "meta.safetensors")
    safetensors.torch.save_file({"a": torch.ones(3), "b": torch.zeros(5)}, path,
                                metadata={"format": "pt"})
    with tensorstream.Stream(memory_limit=1 << 20) as stream:
        index = stream.add_file(path)
        assert stream.file_count() == 1
        assert stream.metadata(index) == {"format": "pt"}
        stream.select(index, ["b"])
        stream.start()
        items = list(stream)
        assert [item.name for item in items] == ["b"]
        read, peak = stream.stats()
        assert read >= items[0].nbytes and peak >= items[0].nbytes
    with pytest.raises(tensorstream.FailedPreconditionError):
        stream.start()


def test_a_file_with_more_than_10000_tensors(tmp_path):
    g = torch.Generator().manual_seed(3)
    dtypes = [torch.float32, torch.bfloat16, torch.int8, torch.float16, torch.int64]
    tensors = {f"t{i:05d}": random_tensor(dtypes[i % len(dtypes)], ((i * 7) % 13,), g)
               for i in range(12_000)}
    path = save(tensors, tmp_path / "many.safetensors")
    loaded = tensorstream.load(path)
    assert len(loaded) == 12_000
    for name, tensor in reference(path).items():
        assert_same(loaded[name], tensor, name)


def test_imports_and_numpy_work_without_torch(tmp_path, model_files):
    script = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any "import torch" now fails
        import runai_model_streamer
        import tensorstream
        arrays = tensorstream.load({model_files[0]!r})
        assert type(arrays["layers.0.norm.weight"]).__module__ == "numpy"
        assert arrays["layers.0.attn.q.weight"].dtype.name in ("uint16", "bfloat16")
        print(len(arrays))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GOOGLE_", "AZURE_"))}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(len(reference(model_files[0])))


def test_library_override_is_reported_when_missing(tmp_path):
    script = "import tensorstream\ntensorstream.version()"
    env = dict(os.environ, TENSORSTREAM_LIBRARY=str(tmp_path / "nowhere.so"))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode != 0
    assert "TENSORSTREAM_LIBRARY" in result.stderr and "nowhere.so" in result.stderr


def test_cli_console_script_runs_the_bundled_binary(model_files):
    result = subprocess.run([sys.executable, "-c", "from tensorstream._cli import main; main()",
                             "inspect", model_files[0]], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "layers.0.attn.q.weight" in result.stdout
