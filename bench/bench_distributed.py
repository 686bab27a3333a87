#!/usr/bin/env python3
"""Distributed loading against not distributed: N gloo ranks on this machine load one model
from S3 (SeaweedFS on loopback) through a proxy that caps each connection's bandwidth, a
model of hosts whose network, not the store, is the bottleneck.

    python3 bench/bench_distributed.py [--gb 1.5] [--ranks 4] [--runs 3]
                                       [--rate-mb-per-connection 4] [--concurrency 8]
                                       [--build build] [--workdir DIR]

For each loader, runs interleaved, N fresh processes meet in a gloo group (file store) and
each loads the whole model through the drop-in's SafetensorsStreamer (vLLM's call shape,
tensors dropped as they come): ours with is_distributed=True and RUNAI_STREAMER_DIST=1,
ours with is_distributed=False, and the same two with runai-model-streamer 0.17.1 (+ s3
0.17.1) in the reference venv. Wall time is from the start of stream_files on every rank
to the last tensor on the slowest; bytes from storage are the proxy's count of ranged-GET
bodies (the server's side; each load has a proxy of its own). Prints a markdown table of medians,
with the most connections each loader had open at once (a per-connection cap rewards
loaders that open more). Loopback only.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_stores  # noqa: E402  (servers, upload, interpreters)

ROOT = bench_stores.ROOT

# One rank; argv: store file, rank, world, uri, distributed (0/1). Prints JSON.
RANK_SNIPPET = """
import json, sys, time
from datetime import timedelta
import torch, torch.distributed as dist
from runai_model_streamer import SafetensorsStreamer
store, rank, world, uri, distributed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5] == "1"
dist.init_process_group("gloo", init_method="file://" + store, rank=rank, world_size=world,
                        timeout=timedelta(seconds=900))
dist.barrier()
start, total = time.time(), 0
with SafetensorsStreamer() as streamer:
    streamer.stream_files([uri], device="cpu", is_distributed=distributed)
    for _, tensor in streamer.get_tensors():
        total += tensor.numel() * tensor.element_size()
end = time.time()
print(json.dumps({"bytes": total, "start": start, "end": end}), flush=True)
dist.barrier()
dist.destroy_process_group()
"""


def proxy_stats(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/__fault_proxy/stats") as reply:
        return json.loads(reply.read())


def run_group(python: str, env: dict, uri: str, ranks: int, distributed: bool,
              workdir: Path, upstream: int, rate: float) -> dict:
    """One load by ``ranks`` processes through a fresh capped proxy in front of the server
    on port ``upstream``: wall time, bytes pulled, peak connections."""
    proxy = subprocess.Popen(
        [sys.executable, str(ROOT / "tests/stores/fault_proxy.py"), "--upstream-port",
         str(upstream), "--plan", "ok", "--max-seconds", "7200", "--rate", str(rate)],
        stdout=subprocess.PIPE, text=True)
    try:
        port = int(proxy.stdout.readline().split()[1])
        env = dict(env, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}")
        store = Path(tempfile.mkdtemp(prefix="group-", dir=workdir)) / "store"
        processes = [subprocess.Popen([python, "-c", RANK_SNIPPET, str(store), str(rank),
                                       str(ranks), uri, "1" if distributed else "0"],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True) for rank in range(ranks)]
        outputs = []
        for process in processes:
            out, err = process.communicate(timeout=1800)
            if process.returncode != 0:
                raise RuntimeError(f"{python} rank failed: {err.strip()[-800:]}")
            outputs.append(json.loads([line for line in out.splitlines()
                                       if line.startswith("{")][-1]))
        stats = proxy_stats(port)
    finally:
        proxy.kill()
    seconds = max(o["end"] for o in outputs) - min(o["start"] for o in outputs)
    return {"seconds": seconds, "pulled": stats["body_bytes"],
            "connections": stats["peak_connections"], "bytes": outputs[0]["bytes"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, default=1.5)
    parser.add_argument("--ranks", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate-mb-per-connection", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--build", default=str(ROOT / "build"))
    parser.add_argument("--workdir", default="/tmp/tensorstream-bench-distributed")
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    fixture = bench_stores.model_fixture(args.build, workdir, args.gb)
    size = fixture.stat().st_size
    s3 = bench_stores.S3Store()
    s3.start(Path(tempfile.mkdtemp(prefix="server-", dir=workdir)))
    try:
        s3.upload(fixture)
        upstream = int(s3.env["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])
        rate = args.rate_mb_per_connection * 1e6
        env = dict(s3.env, RUNAI_STREAMER_CONCURRENCY=str(args.concurrency),
                   RUNAI_STREAMER_DIST="1",
                   # A capped connection takes seconds per chunk: the reference's S3 client
                   # gives up on a request after a few seconds by default.
                   RUNAI_STREAMER_S3_REQUEST_TIMEOUT_MS="300000",
                   GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
        # name: (interpreter, distributed, environment). The reference opens several
        # connections per reader; ours one, so ours also runs with 4x the readers.
        ours, more = str(bench_stores.VENV_PY), {"RUNAI_STREAMER_CONCURRENCY":
                                                 str(4 * args.concurrency)}
        loaders = {
            "tensorstream, distributed": (ours, True, {}),
            "tensorstream, every rank reads all": (ours, False, {}),
            f"tensorstream, distributed, concurrency {4 * args.concurrency}": (ours, True, more),
            f"tensorstream, every rank reads all, concurrency {4 * args.concurrency}":
                (ours, False, more),
        }
        if not args.skip_reference:
            reference = str(bench_stores.PEERS / "bin/python")
            loaders["runai-model-streamer 0.17.1, distributed"] = (reference, True, {})
            loaders["runai-model-streamer 0.17.1, every rank reads all"] = (reference, False, {})
        samples = {name: [] for name in loaders}
        for run in range(args.runs):
            for name, (python, distributed, extra) in loaders.items():
                result = run_group(python, dict(env, **extra), s3.uri, args.ranks, distributed,
                                   workdir, upstream, rate)
                print(f"run {run + 1} {name}: {result['seconds']:.2f} s, "
                      f"{result['pulled'] / 1e9:.3f} GB pulled", flush=True)
                samples[name].append(result)
        print(f"\n{args.ranks} ranks (gloo), {size / 1e9:.2f} GB model from SeaweedFS through a "
              f"proxy capping each connection at {args.rate_mb_per_connection:g} MB/s, "
              f"RUNAI_STREAMER_CONCURRENCY={args.concurrency}; medians of {args.runs} runs\n")
        print("| loader | wall time (s) | GB pulled from storage | × model size | "
              "peak connections |")
        print("|---|---|---|---|---|")
        for name, results in samples.items():
            seconds = statistics.median(r["seconds"] for r in results)
            pulled = statistics.median(r["pulled"] for r in results)
            print(f"| {name} | {seconds:.2f} | {pulled / 1e9:.3f} | {pulled / size:.2f} | "
                  f"{max(r['connections'] for r in results)} |")
    finally:
        s3.server.stop()


if __name__ == "__main__":
    main()
