#!/usr/bin/env python3
"""Local-disk benchmark of the tensorstream CLI against the machine's own limits.

Streams a generated Llama-shaped file with `tensorstream stream --json` at several
concurrencies — tensors as views of the mapped file (the default without a memory limit)
and read into buffers (TENSORSTREAM_MMAP=0) — page-cache warm and cold (the file evicted with posix_fadvise DONTNEED
before each cold run), side by side with `dd` and `cat` of the same file, and prints a
markdown table of medians. Standard library only.

    python3 bench/bench_local.py [--bytes 4e9] [--runs 5] [--build build]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from page_cache import evict, warm  # bench/page_cache.py, beside this script


def timed(cmd):
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def run_tensorstream(cli, path, extra, copy=False):
    """GB/s of `tensorstream stream`; copy=True reads into buffers (TENSORSTREAM_MMAP=0)
    instead of handing out views of the mapped file."""
    env = dict(os.environ, TENSORSTREAM_MMAP="0" if copy else "1")
    out = subprocess.run([cli, "stream", "--json", *extra, path], check=True,
                         capture_output=True, text=True, env=env).stdout
    return json.loads(out)["gb_per_s"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bytes", type=float, default=4e9, help="model size to generate")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--build", default="build", help="CMake build directory")
    ap.add_argument("--model", help="existing .safetensors file instead of a generated one")
    ap.add_argument("--concurrency", default="1,4,16")
    args = ap.parse_args()

    cli = os.path.join(args.build, "tensorstream")
    path = args.model or os.path.expanduser(
        f"~/.cache/tensorstream/sample/llama-{int(args.bytes)}.safetensors")
    if not os.path.exists(path):
        subprocess.run([os.path.join(args.build, "tests", "tensorstream_make_fixture"), "model",
                        path, str(int(args.bytes))], check=True)
    size = os.path.getsize(path)

    cases = []  # (label, mode, function returning GB/s)
    for mode in ("warm", "cold"):
        cases.append((f"dd bs=16M", mode,
                      lambda: size / timed(["dd", f"if={path}", "of=/dev/null", "bs=16M"]) / 1e9))
        if mode == "cold":
            cases.append(("dd bs=16M iflag=direct", mode, lambda: size / timed(
                ["dd", f"if={path}", "of=/dev/null", "bs=16M", "iflag=direct"]) / 1e9))
        cases.append(("cat", mode, lambda: size / timed(["cat", path]) / 1e9))
        for c in args.concurrency.split(","):
            cases.append((f"tensorstream --concurrency {c} (mapped)", mode,
                          lambda c=c: run_tensorstream(cli, path, ["--concurrency", c])))
            cases.append((f"tensorstream --concurrency {c} (read into buffers)", mode,
                          lambda c=c: run_tensorstream(cli, path, ["--concurrency", c], copy=True)))
            if mode == "cold":
                cases.append((f"tensorstream --concurrency {c} --direct", mode,
                              lambda c=c: run_tensorstream(cli, path, ["--concurrency", c, "--direct"])))

    results = {}
    for run in range(args.runs):
        for label, mode, fn in cases:
            evict(path) if mode == "cold" else warm(path)
            results.setdefault((label, mode), []).append(fn())
        print(f"run {run + 1}/{args.runs} done", file=sys.stderr)

    print(f"\nfile: {path} ({size / 1e9:.2f} GB), {args.runs} runs, median GB/s "
          f"(min–max); {os.cpu_count()} cores\n")
    print("| mode | reader | GB/s median | min–max | vs dd |")
    print("|---|---|---|---|---|")
    for mode in ("warm", "cold"):
        base = statistics.median(results[("dd bs=16M", mode)])
        for (label, m), values in results.items():
            if m != mode:
                continue
            med = statistics.median(values)
            print(f"| {mode} | {label} | {med:.2f} | {min(values):.2f}–{max(values):.2f} | "
                  f"{med / base:.2f}× |")


if __name__ == "__main__":
    main()
