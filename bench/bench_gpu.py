#!/usr/bin/env python3
"""GPU loading benchmark: a Llama-shaped SafeTensors file into one CUDA device, side by side.

Loaders (each in its own subprocess, so page cache state and memory are its own):
  tensorstream        tensorstream.load(path, device="cuda:0")  (TENSORSTREAM_GPU_STRATEGY
                      auto: registered mapping when cached, pinned staging when cold)
  tensorstream-staging   the same, forced: pread → pinned slots → GPU
  tensorstream-register  the same, forced: registered windows of the mapping → GPU
  tensorstream-dropin runai_model_streamer drop-in, stream_files(device="cuda:0")
  load_file           safetensors.torch.load_file(path, device="cuda:0")
  safe_open+to        safe_open(...).get_tensor(n).to("cuda:0")
  runai+to            the real runai-model-streamer (own site dir) + .to("cuda:0")
  fastsafetensors     fastsafetensors' SafeTensorsFileLoader (when importable)
Page cache warm and cold (the file evicted with posix_fadvise DONTNEED before each run).
Prints a markdown table of median GB/s. Each loader ends with torch.cuda.synchronize().

    python3 bench/bench_gpu.py --bytes 8e9 --runs 3 [--peer-site DIR]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from page_cache import evict, warm  # bench/page_cache.py, beside this script

LOADERS = ["tensorstream", "tensorstream-staging", "tensorstream-register", "tensorstream-dropin",
           "load_file", "safe_open+to", "runai+to", "fastsafetensors"]
# Our loaders that force a GPU strategy, with the setting they force.
STRATEGIES = {"tensorstream-staging": "staging", "tensorstream-register": "register"}


def write_model(path, target_bytes):
    """A Llama-shaped BF16 file of about target_bytes, random contents."""
    import numpy as np
    hidden, layers, vocab = 4096, 1, 32000
    inter = hidden * 43 // 16
    per_layer = 2 * (2 * hidden * hidden + 2 * hidden * (hidden // 4) + 3 * hidden * inter + 2 * hidden)
    layers = max(1, int((target_bytes - 4 * vocab * hidden) // per_layer))
    shapes = [("model.embed_tokens.weight", (vocab, hidden))]
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes += [(p + "input_layernorm.weight", (hidden,)), (p + "self_attn.q_proj.weight", (hidden, hidden)),
                   (p + "self_attn.k_proj.weight", (hidden // 4, hidden)),
                   (p + "self_attn.v_proj.weight", (hidden // 4, hidden)),
                   (p + "self_attn.o_proj.weight", (hidden, hidden)),
                   (p + "post_attention_layernorm.weight", (hidden,)),
                   (p + "mlp.gate_proj.weight", (inter, hidden)), (p + "mlp.up_proj.weight", (inter, hidden)),
                   (p + "mlp.down_proj.weight", (hidden, inter))]
    shapes += [("model.norm.weight", (hidden,)), ("lm_head.weight", (vocab, hidden))]
    header, offset = {}, 0
    for name, shape in shapes:
        n = 2 * int(np.prod(shape))
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text)
        left = offset
        while left:
            n = min(left, 64 << 20)
            f.write(rng.integers(0, 255, n, dtype=np.uint8).tobytes())
            left -= n


CHILD = r'''
import json, os, sys, time
import torch
loader, path, device = sys.argv[1], sys.argv[2], "cuda:0"
torch.cuda.init(); torch.empty(1, device=device)  # context creation outside the timing
start = time.perf_counter()
total = 0
if loader in ("tensorstream", "tensorstream-staging", "tensorstream-register"):
    import tensorstream
    out = tensorstream.load(path, device=device)
    total = sum(t.numel() * t.element_size() for t in out.values())
elif loader == "tensorstream-dropin":
    from runai_model_streamer import SafetensorsStreamer
    out = {}
    with SafetensorsStreamer() as s:
        s.stream_files([path], device=device)
        for name, t in s.get_tensors():
            out[name] = t
    total = sum(t.numel() * t.element_size() for t in out.values())
elif loader == "load_file":
    from safetensors.torch import load_file
    out = load_file(path, device=device)
    total = sum(t.numel() * t.element_size() for t in out.values())
elif loader == "safe_open+to":
    from safetensors import safe_open
    out = {}
    with safe_open(path, framework="pt") as f:
        for n in f.keys():
            out[n] = f.get_tensor(n).to(device)
    total = sum(t.numel() * t.element_size() for t in out.values())
elif loader == "runai+to":
    from runai_model_streamer import SafetensorsStreamer
    import runai_model_streamer
    assert "tensorstream" not in runai_model_streamer.__file__, runai_model_streamer.__file__
    out = {}
    with SafetensorsStreamer() as s:
        s.stream_file(path)
        for name, t in s.get_tensors():
            out[name] = t.to(device)
    total = sum(t.numel() * t.element_size() for t in out.values())
elif loader == "fastsafetensors":
    from fastsafetensors import SafeTensorsFileLoader, SingleGroup
    loader_ = SafeTensorsFileLoader(SingleGroup(), torch.device(device), nogds=True)
    loader_.add_filenames({0: [path]})
    bufs = loader_.copy_files_to_device()
    out = {k: bufs.get_tensor(k) for k in loader_.get_keys()}
    total = sum(t.numel() * t.element_size() for t in out.values())
torch.cuda.synchronize()
seconds = time.perf_counter() - start
print(json.dumps({"bytes": total, "seconds": seconds}))
'''


def run_child(loader, path, peer_site):
    env = dict(os.environ)
    if loader in STRATEGIES:
        env["TENSORSTREAM_GPU_STRATEGY"] = STRATEGIES[loader]
    if loader == "runai+to":
        if not peer_site:
            raise RuntimeError("no --peer-site with the real runai-model-streamer")
        env["PYTHONPATH"] = peer_site  # the real package only, not our drop-in
    out = subprocess.run([sys.executable, "-c", CHILD, loader, path], env=env,
                         capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr else "failed")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["bytes"] / result["seconds"] / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bytes", type=float, default=8e9)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--path", default="/tmp/tensorstream-bench/llama.safetensors")
    ap.add_argument("--peer-site", default=os.environ.get("PEER_SITE"))
    ap.add_argument("--loaders", default=",".join(LOADERS))
    ap.add_argument("--modes", default="warm,cold")
    args = ap.parse_args()
    os.makedirs(os.path.dirname(args.path), exist_ok=True)
    if not os.path.exists(args.path):
        write_model(args.path, args.bytes)
    size = os.path.getsize(args.path)
    results, failures = {}, {}
    for run in range(args.runs):
        for mode in args.modes.split(","):
            for loader in args.loaders.split(","):
                if loader in failures:
                    continue
                evict(args.path) if mode == "cold" else warm(args.path)
                try:
                    results.setdefault((mode, loader), []).append(run_child(loader, args.path, args.peer_site))
                except Exception as e:  # a peer that does not run here is reported, not fatal
                    failures[loader] = str(e)[:200]
        print(f"run {run + 1}/{args.runs} done", file=sys.stderr, flush=True)
    print(f"\nfile {args.path}: {size / 1e9:.2f} GB; median GB/s of {args.runs} runs\n")
    print("| mode | loader | GB/s | min–max | vs load_file |")
    print("|---|---|---|---|---|")
    for mode in args.modes.split(","):
        base = statistics.median(results.get((mode, "load_file"), [float("nan")]))
        for loader in args.loaders.split(","):
            values = results.get((mode, loader))
            if not values:
                continue
            med = statistics.median(values)
            print(f"| {mode} | {loader} | {med:.2f} | {min(values):.2f}–{max(values):.2f} | {med / base:.2f}× |")
    for loader, why in failures.items():
        print(f"\n{loader}: not measured: {why}")


if __name__ == "__main__":
    main()
