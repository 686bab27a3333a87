#!/usr/bin/env python3
"""One rank of a distributed-loading test (see ranks.py, which starts N of them).

    dist_worker.py CONFIG.json RANK

CONFIG holds, for every rank, what it does: {"world": N, "store": "/tmp/x/store",
"ranks": [{...}, ...]}, each rank's entry with
  "api":       "safetensors" (SafetensorsStreamer.stream_files, vLLM's call shape) or
               "chunks" (DistributedStreamer with FileChunks of every tensor)
  "paths":     the files or URIs to load
  "names":     tensor_names, or null
  "host":      the host name this rank reports (simulates ranks on several hosts), or null
  "behaviour": "load" (the default), "hang" (joins the group, never loads: a stuck rank),
               "die-after" (exits abruptly after "after" tensors: a crashed rank)
  "out":       where to write the result
The result is JSON: {"ok", "error", "error_classes", "seconds", "tensors":
{name: [dtype, shape, sha256, owns its storage]}, "bytes_read"}. Environment variables
(RUNAI_STREAMER_DIST...) come from the parent, per rank.
"""
import hashlib
import json
import os
import socket
import sys
import time
from datetime import timedelta


def digest(tensor) -> str:
    """sha256 of the tensor's bytes (in memory order, as safetensors stores them)."""
    import torch

    if tensor.numel() == 0:
        return hashlib.sha256(b"").hexdigest()
    raw = tensor.contiguous().reshape(-1).view(torch.uint8).cpu()
    return hashlib.sha256(raw.numpy().tobytes()).hexdigest()


def load(config: dict, result: dict) -> None:
    if config.get("api", "safetensors") == "safetensors":
        from runai_model_streamer import SafetensorsStreamer

        with SafetensorsStreamer() as streamer:
            streamer.stream_files(config["paths"], device="cpu", is_distributed=True,
                                  tensor_names=config.get("names"))
            items = streamer.get_tensors()
            shared = streamer._shared  # only to count the bytes this rank read
            record(config, result, items, shared)
        return
    from runai_model_streamer import DistributedStreamer, FileChunks

    requests, names = [], {}
    for file_id, path in enumerate(config["paths"]):
        with open(path, "rb") as f:
            header_size = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(header_size))
        spans = sorted((h["data_offsets"][0], h["data_offsets"][1], n)
                       for n, h in header.items() if n != "__metadata__")
        requests.append(FileChunks(file_id, path, [8 + header_size + s for s, _, _ in spans],
                                   [e - s for s, e, _ in spans]))
        for index, (_, _, name) in enumerate(spans):
            names[(file_id, index)] = name
    with DistributedStreamer() as streamer:
        streamer.stream_files(requests, None, "cpu", is_distributed=True)
        items = ((names[(i, c)], t.reshape(-1)) for i, c, t in streamer.get_chunks())
        record(config, result, items, streamer._shared)


def record(config: dict, result: dict, items, shared) -> None:
    after = config.get("after", 0)
    for count, (name, tensor) in enumerate(items):
        if config.get("behaviour") == "die-after" and count == after:
            os._exit(3)
        owns = tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()
        result["tensors"][name] = [str(tensor.dtype), list(tensor.shape), digest(tensor), owns]
    stream = shared._stream if shared is not None else None
    result["bytes_read"] = stream.stats()[0] if stream is not None else 0


def main() -> int:
    everything = json.load(open(sys.argv[1]))
    rank = int(sys.argv[2])
    config = everything["ranks"][rank]
    if config.get("host"):
        socket.gethostname = lambda: config["host"]
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{everything['store']}", rank=rank,
                            world_size=everything["world"], timeout=timedelta(seconds=120))
    result = {"ok": False, "error": None, "error_classes": [], "tensors": {}, "bytes_read": 0}
    started = time.monotonic()
    try:
        if config.get("behaviour") == "hang":
            time.sleep(3600)
        load(config, result)
        result["ok"] = True
    except Exception as error:  # noqa: BLE001 - reported to the test
        result["error"] = str(error)
        result["error_classes"] = [c.__name__ for c in type(error).__mro__]
    result["seconds"] = time.monotonic() - started
    with open(config["out"], "w") as f:
        json.dump(result, f)
    os._exit(0)  # no teardown collective that could wait for a failed peer


if __name__ == "__main__":
    sys.exit(main())
