#!/usr/bin/env python3
"""Cost per tensor from Python, side by side: a file of many small tensors (an MoE-like
checkpoint: 50,000 by default) loaded, every tensor taken, page cache warm.

Loaders, each run in a fresh process (torch imported before the clock starts), interleaved
run by run so that drift hits every loader alike:
  tensorstream drop-in     SafetensorsStreamer().stream_file + get_tensors (owned, private)
  tensorstream native      tensorstream.stream (mapped, its default)
  runai-model-streamer     the real 0.17.1, in its own venv (scripts/common.sh)
  safetensors safe_open    safe_open + get_tensor for every key
  safetensors load_file    load_file

Prints a markdown table of medians: microseconds per tensor and the ratio to safe_open.

    python bench/bench_tensors.py [--tensors 50000] [--runs 7]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from page_cache import warm  # bench/page_cache.py, beside this script

CACHE = Path(os.environ.get("TENSORSTREAM_CACHE", Path.home() / ".cache" / "tensorstream"))
VENV_PY = CACHE / "venv" / "bin" / "python"
REFERENCE_PY = CACHE / "reference-venv" / "bin" / "python"
LOADERS = {
    "tensorstream drop-in": VENV_PY,
    "tensorstream native": VENV_PY,
    "runai-model-streamer 0.17.1": REFERENCE_PY,
    "safetensors safe_open": VENV_PY,
    "safetensors load_file": VENV_PY,
}


def write_fixture(path: Path, count: int) -> None:
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    dtypes = [torch.bfloat16, torch.float32, torch.float16, torch.int8]
    tensors = {}
    for i in range(count):
        dtype = dtypes[i % len(dtypes)]
        shape = (16,) if i % 3 else (4, 8)
        tensors[f"model.layers.{i // 512}.mlp.experts.{i % 512}.w"] = torch.randn(
            shape, generator=g).to(dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))


def one_run(loader: str, path: str) -> None:
    import torch  # noqa: F401 (imported before the clock, as in a server)

    start = time.perf_counter()
    count = 0
    if loader in ("tensorstream drop-in", "runai-model-streamer 0.17.1"):
        from runai_model_streamer import SafetensorsStreamer

        with SafetensorsStreamer() as streamer:
            streamer.stream_file(path)
            for _name, _tensor in streamer.get_tensors():
                count += 1
    elif loader == "tensorstream native":
        import tensorstream

        for _name, _tensor in tensorstream.stream(path):
            count += 1
    elif loader == "safetensors safe_open":
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            for key in f.keys():
                f.get_tensor(key)
                count += 1
    elif loader == "safetensors load_file":
        from safetensors.torch import load_file

        count = len(load_file(path))
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "count": count}))


def measure(loader: str, path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["RUNAI_STREAMER_LOG_LEVEL"] = "WARNING"
    result = subprocess.run([str(LOADERS[loader]), __file__, "_one", loader, str(path)],
                            capture_output=True, text=True, timeout=900, env=env)
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    if sys.argv[1:2] == ["_one"]:  # one measured run, in its own process
        one_run(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tensors", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--file", default=None)
    args = parser.parse_args()
    path = Path(args.file or f"/tmp/tensorstream-bench/many-{args.tensors}.safetensors")
    if not path.exists():
        print(f"writing {path} ({args.tensors} tensors)...", file=sys.stderr)
        write_fixture(path, args.tensors)
    loaders = [name for name, python in LOADERS.items() if python.exists()]
    results = {name: [] for name in loaders}
    for run in range(args.runs):
        for loader in loaders:
            warm(path)
            outcome = measure(loader, path)
            results[loader].append(outcome)
            print(f"run {run + 1} {loader}: {outcome}", file=sys.stderr)
    print(f"\n{path.name}: {args.tensors} tensors, {path.stat().st_size / 1e6:.1f} MB, page cache "
          f"warm; medians of {args.runs} runs; {os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d')}\n")
    base = None
    rows = []
    for loader, outcomes in results.items():
        good = [o for o in outcomes if "error" in o or o["count"] == args.tensors]
        failed = [o for o in good if "error" in o]
        if failed or not good:
            rows.append((loader, None, failed[0]["error"] if failed else "wrong count"))
            continue
        micros = statistics.median(o["seconds"] for o in good) / args.tensors * 1e6
        spread = [o["seconds"] / args.tensors * 1e6 for o in good]
        rows.append((loader, micros, f"{min(spread):.1f}–{max(spread):.1f}"))
        if loader == "safetensors safe_open":
            base = micros
    print("| loader | µs per tensor | min–max | vs safe_open |")
    print("|---|---:|---:|---:|")
    for loader, micros, extra in rows:
        if micros is None:
            print(f"| {loader} | failed: {extra} | | |")
        else:
            ratio = f"{micros / base:.2f}×" if base else ""
            print(f"| {loader} | {micros:.1f} | {extra} | {ratio} |")


if __name__ == "__main__":
    main()
