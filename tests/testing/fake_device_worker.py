#!/usr/bin/env python3
"""The Python device path on a stand-in CUDA runtime, in a process of its own (the library
keeps the first CUDA runtime it loads for the life of the process, so these runs must not
share one with the other tests). Run by tests/python/test_device_fake.py:

    TENSORSTREAM_CUDART=.../libtensorstream_fake_cudart.so fake_device_worker.py SCENARIO ARGS.json

The stand-in (tests/testing/fake_cudart.c) gives host memory as device memory and counts
what is live, so the binding's ownership of device tensors can be checked here: the two
functions that need a real GPU are replaced: resolve_device (torch.cuda is not available)
and wrap_device_memory (a CPU tensor over the "device" bytes instead of
torch.as_tensor(__cuda_array_interface__)). Everything else is the installed package.

Prints one JSON object: what the scenario observed (digests, live device bytes at points
of interest, streams created, the error message).
"""
import ctypes
import gc
import hashlib
import json
import os
import sys

import torch
from safetensors.torch import load_file

import tensorstream
import tensorstream._api as api
import tensorstream._tensors as tensors
from runai_model_streamer import SafetensorsStreamer
from runai_model_streamer.safetensors_streamer import safetensors_streamer as dropin

fake = ctypes.CDLL(os.environ["TENSORSTREAM_CUDART"])
fake.fake_cudart_live_bytes.restype = ctypes.c_longlong
fake.fake_cudart_peak_bytes.restype = ctypes.c_longlong
fake.fake_cudart_allocations.restype = ctypes.c_longlong


def fake_resolve_device(device) -> str:
    text = str(device)
    return "cuda:0" if text == "cuda" else text


def host_wrap(memory, device: int):
    """The "device" bytes as a CPU tensor that keeps ``memory`` alive, as torch.as_tensor
    keeps an object with __cuda_array_interface__ alive."""
    assert device == 0, device
    interface = memory.__cuda_array_interface__
    assert interface["stream"] is None and interface["typestr"] == "|u1", interface
    pointer, nbytes = interface["data"][0], interface["shape"][0]
    if nbytes == 0:
        return torch.empty(0, dtype=torch.uint8)
    raw = (ctypes.c_ubyte * nbytes).from_address(pointer)
    raw.owner = memory
    return torch.frombuffer(raw, dtype=torch.uint8)


api.resolve_device = fake_resolve_device
dropin.resolve_device = fake_resolve_device
tensors.wrap_device_memory = host_wrap

streams_created = []
original_init = tensorstream.Stream.__init__


def counting_init(self, *args, **kwargs):
    streams_created.append(kwargs.get("device"))
    original_init(self, *args, **kwargs)


tensorstream.Stream.__init__ = counting_init


def digest(tensor) -> str:
    return hashlib.sha256(tensor.contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                          if tensor.numel() else b"").hexdigest()


def expected(paths) -> dict:
    out = {}
    for path in paths:
        out.update({name: digest(t) for name, t in load_file(path).items()})
    return out


def live() -> int:
    gc.collect()
    return fake.fake_cudart_live_bytes()


def scenario_load(args) -> dict:
    """tensorstream.load of several files onto the device: one stream, the bytes, and the
    device memory held exactly as long as the tensors."""
    got = tensorstream.load(args["paths"], device="cuda")
    result = {"digests": {name: digest(t) for name, t in got.items()},
              "expected": expected(args["paths"]),
              "dtypes_ok": all(got[n].dtype == t.dtype and got[n].shape == t.shape
                               for p in args["paths"] for n, t in load_file(p).items()),
              "live_while_held": live(), "streams": streams_created}
    del got
    result["live_after"] = live()
    return result


def scenario_bounded(args) -> dict:
    """tensorstream.stream with a consumer that drops every tensor: the device memory
    stays within about twice device_memory_limit, far below the model."""
    baseline = live()
    digests = {}
    for name, tensor in tensorstream.stream(args["paths"], device="cuda:0",
                                            device_memory_limit=args["limit"]):
        digests[name] = digest(tensor)
        del tensor
    return {"digests": digests, "expected": expected(args["paths"]), "baseline": baseline,
            "peak": fake.fake_cudart_peak_bytes(), "live_after": live(),
            "streams": streams_created}


def scenario_dropin(args) -> dict:
    """The drop-in's stream_files on the device, vLLM's call shape."""
    with SafetensorsStreamer() as streamer:
        streamer.stream_files(args["paths"], device="cuda:0")
        got = {name: tensor for name, tensor in streamer.get_tensors()}
    result = {"digests": {name: digest(t) for name, t in got.items()},
              "expected": expected(args["paths"]), "streams": streams_created,
              "live_while_held": live()}
    del got
    result["live_after"] = live()
    return result


def scenario_error(args) -> dict:
    """A file that fails midway: the error names it, and nothing stays allocated."""
    kept, message = [], None
    try:
        for name, tensor in tensorstream.stream(args["paths"], device="cuda:0"):
            kept.append(name)
    except tensorstream.TensorStreamError as error:
        message = str(error)
    return {"error": message, "taken": len(kept), "live_after": live()}


def scenario_early_stop(args) -> dict:
    """A consumer that stops after a few tensors: what it did not take is freed."""
    iterator = tensorstream.stream(args["paths"], device="cuda:0")
    first = [next(iterator) for _ in range(args["take"])]
    iterator.close()
    live_with_taken = live()
    taken_bytes = sum(t.numel() * t.element_size() for _, t in first)
    del first
    return {"live_with_taken": live_with_taken, "taken_bytes": taken_bytes,
            "live_after": live()}


def main() -> int:
    scenario, args = sys.argv[1], json.loads(open(sys.argv[2]).read())
    print(json.dumps(globals()[f"scenario_{scenario}"](args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
