"""Runs N ranks of a torch.distributed (gloo) group as processes, for the distributed-loading
tests: each rank is dist_worker.py with its own entry of the configuration; they meet
through a file store in the test's own directory (no fixed port), and talk over loopback.

    results = run_ranks(tmp_path, [{"paths": files}, {"paths": files}], env={...})

Every process is killed after ``timeout`` seconds whatever happens, so a hang fails the
test instead of stalling the suite; a rank that wrote no result (killed, crashed) has None.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional

WORKER = Path(__file__).resolve().parent / "dist_worker.py"


class Ranks(NamedTuple):
    results: List[Optional[dict]]
    seconds: float                # wall time until the last rank ended
    timed_out: List[int]          # ranks killed at the timeout
    stderr: List[str]


def run_ranks(directory, ranks: List[dict], env: Optional[Dict[str, str]] = None,
              rank_env: Optional[List[Dict[str, str]]] = None, timeout: float = 180,
              wait_for: Optional[List[int]] = None) -> Ranks:
    """Starts one process per entry of ``ranks`` and waits for them (only for the ranks in
    ``wait_for`` when given: the others are killed once those ended)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    world = len(ranks)
    for rank, entry in enumerate(ranks):
        entry.setdefault("out", str(directory / f"rank-{rank}.json"))
    config = {"world": world, "store": str(directory / "store"), "ranks": ranks}
    (directory / "config.json").write_text(json.dumps(config))
    base = dict(os.environ)
    base.update({"GLOO_SOCKET_IFNAME": "lo", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"})
    base.update(env or {})
    processes, logs = [], []
    started = time.monotonic()
    for rank in range(world):
        rank_environment = dict(base)
        rank_environment.update((rank_env or [{}] * world)[rank])
        log = open(directory / f"rank-{rank}.log", "w")
        logs.append(log)
        processes.append(subprocess.Popen(
            [sys.executable, str(WORKER), str(directory / "config.json"), str(rank)],
            env=rank_environment, stdout=log, stderr=subprocess.STDOUT))
    awaited = set(range(world) if wait_for is None else wait_for)
    deadline = started + timeout
    timed_out = []
    while time.monotonic() < deadline and any(processes[r].poll() is None for r in awaited):
        time.sleep(0.05)
    seconds = time.monotonic() - started
    for rank, process in enumerate(processes):
        if process.poll() is None:
            process.kill()
            if rank in awaited:
                timed_out.append(rank)
        process.wait()
    for log in logs:
        log.close()
    results = []
    for entry in ranks:
        out = Path(entry["out"])
        results.append(json.loads(out.read_text()) if out.exists() else None)
    stderr = [(directory / f"rank-{r}.log").read_text(errors="replace") for r in range(world)]
    return Ranks(results, seconds, timed_out, stderr)


def expected_digests(paths, names=None) -> Dict[str, list]:
    """{name: [dtype, shape, sha256]} of the tensors of ``paths`` by safetensors.safe_open."""
    import torch
    from safetensors import safe_open

    expected = {}
    for path in paths:
        with safe_open(str(path), "pt") as handle:
            for name in handle.keys():
                if names is not None and name not in names:
                    continue
                tensor = handle.get_tensor(name)
                raw = (tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
                       if tensor.numel() else b"")
                expected[name] = [str(tensor.dtype), list(tensor.shape),
                                  hashlib.sha256(raw).hexdigest()]
    return expected


def data_bytes(paths, names=None) -> int:
    """Bytes of tensor data in SafeTensors files (only ``names`` when given)."""
    total = 0
    for path in paths:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(size))
        total += sum(entry["data_offsets"][1] - entry["data_offsets"][0]
                     for name, entry in header.items()
                     if name != "__metadata__" and (names is None or name in names))
    return total
