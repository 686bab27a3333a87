"""The scenarios of the differential test, run once against runai-model-streamer 0.17.1
and once against tensorstream's drop-in: whichever ``runai_model_streamer`` this Python
imports.

    python scenarios.py WORKDIR OUT.json

writes the fixtures into WORKDIR (the same bytes on every run), runs every scenario in
this process, and writes OUT.json: for each scenario either what it produced (tensors as
dtype, shape and SHA-256 of their bytes; metadata; listings) or the error it raised — the
qualified names of the exception's classes, the step that raised it ("construct",
"enter", "stream_files", "iterate") and the message. test_differential.py compares the two.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import sys
import traceback

import torch
from safetensors.torch import save_file

import runai_model_streamer as rms
from runai_model_streamer import FileChunks, FileStreamer, SafetensorsStreamer

WORK = sys.argv[1]
SCENARIOS = {}


def scenario(function):
    SCENARIOS[function.__name__] = function
    return function


def path(name: str) -> str:
    return os.path.join(WORK, name)


# ---------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------
def random_tensor(dtype, shape, generator):
    count = 1
    for dim in shape:
        count *= dim
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=generator).to(torch.bool)
    itemsize = torch.empty((), dtype=dtype).element_size()
    raw = torch.randint(0, 256, (count * itemsize,), dtype=torch.uint8, generator=generator)
    return raw.view(dtype).reshape(shape)


DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32,
          torch.int16, torch.int8, torch.uint8, torch.bool, torch.complex64, torch.uint16,
          torch.uint32, torch.uint64, torch.float8_e4m3fn, torch.float8_e5m2]
for extra in ("float8_e8m0fnu", "float4_e2m1fn_x2"):
    if hasattr(torch, extra):
        DTYPES.append(getattr(torch, extra))


def raw_file(name: str, header, data: bytes = b"", declared=None) -> str:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    with open(path(name), "wb") as f:
        f.write(struct.pack("<Q", len(text) if declared is None else declared) + text + data)
    return path(name)


def u8(begin, end, shape=None, dtype="U8"):
    return {"dtype": dtype, "shape": shape if shape is not None else [end - begin],
            "data_offsets": [begin, end]}


def make_fixtures() -> None:
    g = torch.Generator().manual_seed(7)
    every = {f"t_{str(d).split('.')[-1]}": random_tensor(d, (3, 4), g) for d in DTYPES}
    every["empty"] = torch.empty(0, 5)
    every["scalar"] = torch.tensor(2.5)
    save_file(every, path("dtypes.safetensors"), metadata={"format": "pt"})
    for shard in range(3):
        save_file({f"layers.{shard}.w": random_tensor(torch.bfloat16, (64, 32), g),
                   f"layers.{shard}.b": random_tensor(torch.float32, (32,), g),
                   f"layers.{shard}.big": random_tensor(torch.float16, (256, 256), g)},
                  path(f"shard-{shard}.safetensors"))
    # An odd-sized U8 tensor puts the tensors after it at odd offsets.
    raw_file("unaligned.safetensors",
             {"odd": u8(0, 3), "f32": u8(3, 19, [4], "F32"), "f64": u8(19, 35, [2], "F64")},
             bytes(range(35)))
    with open(path("blob.bin"), "wb") as f:
        f.write(bytes((i * 37 + 11) % 256 for i in range(100_000)))
    open(path("bad-empty"), "wb").close()
    with open(path("bad-short"), "wb") as f:
        f.write(b"abc")
    raw_file("bad-huge_len", b"{}", declared=200 << 20)
    raw_file("bad-beyond", b"{}", declared=1000)
    raw_file("bad-notjson", b"{not json}")
    raw_file("bad-notutf8", b'{"\xff": 1}')
    raw_file("bad-nul", b'{"a": {"dtype":"U8","shape":[4],"data_offsets":[0,4]}}\x00xx', b"x" * 4)
    raw_file("bad-overlap", {"a": u8(0, 4), "b": u8(2, 6)}, b"x" * 6)
    raw_file("bad-gap", {"a": u8(0, 4), "b": u8(6, 10)}, b"x" * 10)
    raw_file("bad-shape", {"a": u8(0, 4, [4], "F32")}, b"x" * 4)
    raw_file("bad-dtype", {"a": u8(0, 4, [4], "Q7")}, b"x" * 4)
    raw_file("bad-nooff", {"a": {"dtype": "U8", "shape": [4]}}, b"x" * 4)
    raw_file("bad-trunc", {"a": u8(0, 8)}, b"x" * 4)
    raw_file("bad-trailing", {"a": u8(0, 4)}, b"x" * 8)
    raw_file("bad-notstart", {"a": u8(2, 6)}, b"x" * 6)
    raw_file("bad-startend", {"a": {"dtype": "U8", "shape": [0], "data_offsets": [4, 0]}}, b"x" * 4)
    raw_file("bad-array", [1, 2])
    raw_file("bad-duplicate",
             b'{"a": {"dtype":"U8","shape":[4],"data_offsets":[0,4]},'
             b' "a": {"dtype":"U8","shape":[4],"data_offsets":[0,4]}}', b"x" * 4)
    os.makedirs(path("tree/sub"), exist_ok=True)
    for rel, size in (("tree/a.safetensors", 10), ("tree/b.json", 3), ("tree/sub/c.safetensors", 7)):
        with open(path(rel), "wb") as f:
            f.write(b"x" * size)


# ---------------------------------------------------------------------------------------
# Outcomes
# ---------------------------------------------------------------------------------------
def describe(tensor) -> list:
    data = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    return [str(tensor.dtype), list(tensor.shape), hashlib.sha256(data).hexdigest(),
            tensor.data_ptr() % max(1, tensor.element_size()) == 0 or tensor.numel() == 0]


class Steps:
    """Tracks the step a scenario is in, for the error report."""
    now = "construct"


def load(paths, env=None, **kwargs) -> dict:
    """Streams with SafetensorsStreamer, returning tensors and metadata."""
    with environment(env or {}):
        Steps.now = "enter"
        with SafetensorsStreamer() as streamer:
            Steps.now = "stream_files"
            streamer.stream_files(paths, **kwargs)
            metadata = {str(i): [[m.name, list(m.shape), m.dtype, m.offsets.start, m.offsets.end,
                                  m.get_bytesize(), m.get_item_count(), m.get_element_size(),
                                  list(m.get_storage_shape()), str(m.get_torch_dtype())]
                                 for m in entries]
                        for i, entries in streamer.files_to_tensors_metadata.items()}
            Steps.now = "iterate"
            tensors = {}
            for name, tensor in streamer.get_tensors():
                tensors.setdefault(name, []).append(describe(tensor))
    return {"tensors": tensors, "metadata": metadata}


def chunks(requests, env=None, **kwargs) -> dict:
    with environment(env or {}):
        Steps.now = "enter"
        with FileStreamer() as streamer:
            Steps.now = "stream_files"
            streamer.stream_files(requests, **kwargs)
            Steps.now = "iterate"
            out = {}
            for file_id, index, tensor in streamer.get_chunks():
                key = f"{file_id}/{index}"
                assert key not in out, f"{key} delivered twice"
                out[key] = describe(tensor)
    return {"chunks": out}


class environment:
    def __init__(self, values: dict) -> None:
        self.values = values

    def __enter__(self):
        self.saved = {k: os.environ.get(k) for k in self.values}
        os.environ.update(self.values)

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ---------------------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------------------
SHARDS = [path(f"shard-{i}.safetensors") for i in range(3)]


@scenario
def every_dtype():
    return load([path("dtypes.safetensors")])


@scenario
def several_files():
    return load(SHARDS)


@scenario
def stream_file_one_by_one():
    out = {}
    Steps.now = "enter"
    with SafetensorsStreamer() as streamer:
        for shard in SHARDS:
            Steps.now = "stream_files"
            streamer.stream_file(shard)
            Steps.now = "iterate"
            out.update({name: describe(t) for name, t in streamer.get_tensors()})
    return out


@scenario
def not_owned():
    return load(SHARDS, owned=False)


@scenario
def unaligned_offsets_are_copied():
    return load([path("unaligned.safetensors")])


@scenario
def unaligned_offsets_under_a_memory_limit():
    return load([path("unaligned.safetensors")], env={"RUNAI_STREAMER_MEMORY_LIMIT": "0"})


@scenario
def tensor_names_across_files():
    return load(SHARDS, tensor_names=["layers.0.w", "layers.2.big", "layers.1.b"])


@scenario
def tensor_names_as_a_set_with_repeats():
    return load(SHARDS, tensor_names=("layers.0.w", "layers.0.w"))


@scenario
def tensor_names_a_str():
    return load(SHARDS, tensor_names="layers.0.w")


@scenario
def tensor_names_empty():
    return load(SHARDS, tensor_names=[])


@scenario
def tensor_names_unknown():
    return load(SHARDS, tensor_names=["layers.0.w", "nope", "also.nope"])


@scenario
def tensor_names_in_two_files():
    return load([SHARDS[0], SHARDS[0]], tensor_names=["layers.0.w"])


@scenario
def same_file_twice():
    return load([SHARDS[0], SHARDS[0]])


for _limit in ("-1", "0", "1000000", " 600000 "):
    def _memory(limit=_limit):
        return load(SHARDS, env={"RUNAI_STREAMER_MEMORY_LIMIT": limit})
    _memory.__name__ = f"memory_limit_{_limit.strip()}"
    scenario(_memory)


@scenario
def memory_limit_below_the_largest_tensor():
    return load(SHARDS, env={"RUNAI_STREAMER_MEMORY_LIMIT": "10"})


@scenario
def memory_limit_negative():
    return load(SHARDS, env={"RUNAI_STREAMER_MEMORY_LIMIT": "-5"})


@scenario
def memory_limit_not_a_number():
    return load(SHARDS, env={"RUNAI_STREAMER_MEMORY_LIMIT": "lots"})


for _name, _value in (("CONCURRENCY", "0"), ("CONCURRENCY", "-3"), ("CONCURRENCY", "abc"),
                      ("CONCURRENCY", "5000"), ("CONCURRENCY", "1"), ("CHUNK_BYTESIZE", "0"),
                      ("CHUNK_BYTESIZE", "abc"), ("CHUNK_BYTESIZE", "1"),
                      ("CHUNK_BYTESIZE", "33554432")):
    def _setting(name=_name, value=_value):
        return load(SHARDS, env={f"RUNAI_STREAMER_{name}": value})
    _setting.__name__ = f"env_{_name.lower()}_{_value}"
    scenario(_setting)


@scenario
def distributed_setting_invalid():
    return load(SHARDS, env={"RUNAI_STREAMER_DIST": "sometimes"}, is_distributed=True)


@scenario
def distributed_without_a_process_group():
    return load(SHARDS, is_distributed=True)


for _device in ("cpu:0", "torch.device('cpu')", "None", "meta", "bogus", "cuda:x"):
    def _on(device=_device):
        value = {"torch.device('cpu')": torch.device("cpu"), "None": None}.get(device, device)
        return load(SHARDS[:1], device=value)
    _on.__name__ = f"device_{_device}"
    scenario(_on)


for _case in ("empty", "short", "huge_len", "beyond", "notjson", "notutf8", "nul", "overlap",
              "gap", "shape", "dtype", "nooff", "trunc", "trailing", "notstart", "startend",
              "array", "duplicate"):
    def _bad(case=_case):
        return load([SHARDS[0], path(f"bad-{case}")])
    _bad.__name__ = f"corrupt_{_case}"
    scenario(_bad)


@scenario
def missing_file():
    return load([SHARDS[0], path("does-not-exist.safetensors")])


@scenario
def file_chunks_ranges():
    blob = path("blob.bin")
    return chunks([FileChunks(7, blob, [5000, 10, 10, 99_000, 70_000], [1000, 3000, 0, 1000, 20_000]),
                   FileChunks.contiguous(9, blob, 123, [10, 20, 30_000, 0, 7]),
                   FileChunks(3, SHARDS[1], [8, 0], [100, 8])])


@scenario
def file_chunks_with_a_memory_limit_and_not_owned():
    blob = path("blob.bin")
    return chunks([FileChunks.contiguous(1, blob, 0, [40_000, 40_000, 20_000])],
                  memory_limit=50_000, owned=False)


@scenario
def file_chunks_below_the_memory_limit():
    return chunks([FileChunks.contiguous(1, path("blob.bin"), 0, [40_000, 40_000])],
                  memory_limit=100)


@scenario
def file_chunks_missing_file():
    return chunks([FileChunks(1, path("nope.bin"), [0], [10])])


@scenario
def file_chunks_past_the_end():
    return chunks([FileChunks(1, path("blob.bin"), [99_990], [100])])


@scenario
def file_chunks_not_parallel():
    return chunks([FileChunks(1, path("blob.bin"), [0, 10], [10])])


@scenario
def file_chunks_sizes():
    request = FileChunks.contiguous(4, path("blob.bin"), 7, [5, 500, 3])
    return [request.offsets, request.total_size(), request.max_chunk_size(), request.id]


@scenario
def list_files_recursive():
    found = FileStreamer().list_files(path("tree"))
    return sorted([os.path.relpath(p, WORK), size] for p, size in found)


@scenario
def list_files_flat_with_patterns():
    found = FileStreamer().list_files(path("tree"), is_recursive=False,
                                      allow_patterns=["*.safetensors", "*.json"],
                                      ignore_patterns=["*.json"])
    return sorted([os.path.relpath(p, WORK), size] for p, size in found)


@scenario
def list_safetensors_of_a_directory():
    return sorted(os.path.relpath(p, WORK) for p in rms.list_safetensors(path("tree")))


@scenario
def pull_files_of_a_local_path():
    rms.pull_files(path("tree"), path("pulled"))


@scenario
def object_storage_model_of_a_local_path():
    rms.ObjectStorageModel(model_path=path("tree"), dst=path("cache"))


@scenario
def object_storage_model_sentinel():
    return rms.ObjectStorageModel.SENTINEL_NAME


@scenario
def prepare_request_describes_each_file():
    from runai_model_streamer.safetensors_streamer.safetensors_pytorch import prepare_request

    Steps.now = "enter"
    with rms.DistributedStreamer() as fs:
        Steps.now = "stream_files"
        result = prepare_request(fs, SHARDS + [path("dtypes.safetensors")], None)
    return [[offset, [[m.name, m.offsets.start, m.offsets.end] for m in entries], sizes]
            for offset, entries, sizes in result]


@scenario
def metadata_from_a_parsed_header():
    from runai_model_streamer.safetensors_streamer.safetensors_pytorch import SafetensorsMetadata

    with open(SHARDS[0], "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        blob = json.loads(f.read(size))
    meta = SafetensorsMetadata(blob, 8 + size)
    return [meta.offset, meta.read_sizes, [m.name for m in meta.tensors_metadata]]


@scenario
def metadata_from_an_overlapping_header():
    from runai_model_streamer.safetensors_streamer.safetensors_pytorch import SafetensorsMetadata

    SafetensorsMetadata({"a": u8(0, 4), "b": u8(2, 6)}, 64)


@scenario
def dtype_map():
    from runai_model_streamer.safetensors_streamer import safetensors_pytorch

    return sorted([k, str(v)] for k, v in safetensors_pytorch.get_safetensors_dtype_map().items())


@scenario
def distributed_streamer_without_a_group():
    streamer = rms.DistributedStreamer()
    return [streamer.get_group_size()]


@scenario
def credentials_fields():
    from runai_model_streamer.s3_utils.s3_utils import S3Credentials

    c = S3Credentials("id", "secret", "token", "region", "http://endpoint")
    return [c.access_key_id, c.secret_access_key, c.session_token, c.region_name, c.endpoint]


def run(name: str) -> dict:
    Steps.now = "construct"
    try:
        return {"outcome": "ok", "value": SCENARIOS[name]()}
    except Exception as error:  # noqa: BLE001 (every error is the result)
        return {"outcome": "error", "step": Steps.now,
                "classes": [f"{c.__module__}.{c.__qualname__}" for c in type(error).__mro__],
                "message": str(error), "traceback": traceback.format_exc(limit=4)}


if __name__ == "__main__":
    make_fixtures()
    results = {name: run(name) for name in SCENARIOS}
    results["__package__"] = {"outcome": "ok", "value": os.path.dirname(rms.__file__)}
    with open(sys.argv[2], "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
