"""Size and import time: our self-contained wheel against the reference's wheels (core, S3,
GCS and Azure: what `pip install runai-model-streamer[s3,gcs,azure]` brings).

    python bench/bench_wheel.py --wheel dist/tensorstream-*.whl [--runs 15]

Measured:
  * wheel bytes: ours (scripts/build_wheel.sh) and the reference's four wheels, fetched
    with `pip download --no-deps` (PyPI);
  * installed bytes: the files each distribution installs (importlib.metadata RECORD),
    and the Python dependencies they pull in on top, numpy and torch (and torch's own
    dependencies) left out since both sides need them;
  * `import runai_model_streamer` time: a fresh interpreter per run, medians of --runs,
    the two interleaved; alone, and after `import torch` (as inside vLLM, where torch is
    already loaded), each minus the same interpreter's time without the import.
Both run in the same environment: the reference's venv (scripts/common.sh,
ensure_reference_venv, which sees the main venv's packages through links) and a venv made
here with our wheel and the same links, so only the package differs.

Prints a Markdown table for bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CACHE = Path(os.environ.get("TENSORSTREAM_CACHE", Path.home() / ".cache" / "tensorstream"))
REFERENCE_WHEELS = ["runai-model-streamer==0.17.1", "runai-model-streamer-s3==0.17.1",
                    "runai-model-streamer-gcs==0.17.1", "runai-model-streamer-azure==0.17.0"]
# Needed by both sides, so not counted as either's dependencies.
SHARED = {"numpy", "torch"}

# Run inside a venv: installed bytes of the named distributions, and of the closure of
# their requirements minus the shared ones and everything those need.
SIZES_SCRIPT = r"""
import json, re, sys
from importlib import metadata

def size(dist):
    return sum(f.size or 0 for f in (dist.files or []))

def requirements(dist):
    names = []
    for req in dist.requires or []:
        if "extra ==" in req:
            continue
        names.append(re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0].lower().replace("_", "-"))
    return names

def closure(names):
    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            todo.extend(requirements(metadata.distribution(name)))
        except metadata.PackageNotFoundError:
            pass
    return seen

own, shared = sys.argv[1].split(","), sys.argv[2].split(",")
dists = [metadata.distribution(name) for name in own]
deps = closure(n for d in dists for n in requirements(d)) - closure(shared) - set(own)
total = 0
for name in sorted(deps):
    try:
        total += size(metadata.distribution(name))
    except metadata.PackageNotFoundError:
        pass
print(json.dumps({"installed": sum(size(d) for d in dists), "deps": total,
                  "dep_names": sorted(deps)}))
"""


def run(cmd: list, **kwargs) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs).stdout


def our_venv(wheel: Path, reference_python: Path, where: Path) -> Path:
    """A venv with our wheel and, through a .pth file, the reference venv's shared links."""
    base = run([str(reference_python), "-c", "import sys; print(sys.base_prefix)"]).strip()
    venv = where / "ours"
    run([f"{base}/bin/python3", "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)])
    site = run([str(python), "-c",
                "import sysconfig; print(sysconfig.get_path('purelib'))"]).strip()
    shared = reference_python.parent.parent / "shared-site"
    Path(site, "zz_shared_site.pth").write_text(f"{shared}\n")
    return python


def sizes(python: Path, dists: list) -> dict:
    return json.loads(run([str(python), "-c", SIZES_SCRIPT, ",".join(dists), ",".join(SHARED)]))


def import_seconds(python: Path, runs: int) -> dict:
    """Medians of interpreter start-ups: with and without the import, alone and after torch."""
    cases = {"bare": "pass", "alone": "import runai_model_streamer",
             "torch": "import torch", "after_torch": "import torch; import runai_model_streamer"}
    times = {case: [] for case in cases}
    for _ in range(runs):
        for case, code in cases.items():
            start = time.perf_counter()
            run([str(python), "-c", code])
            times[case].append(time.perf_counter() - start)
    median = {case: statistics.median(values) for case, values in times.items()}
    return {"alone": median["alone"] - median["bare"],
            "after_torch": median["after_torch"] - median["torch"]}


def interleaved_imports(pythons: dict, runs: int) -> dict:
    results = {name: {"alone": [], "after_torch": []} for name in pythons}
    for _ in range(runs):
        for name, python in pythons.items():
            one = import_seconds(python, 1)
            for key, value in one.items():
                results[name][key].append(value)
    return {name: {key: statistics.median(values) for key, values in by.items()}
            for name, by in results.items()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wheel", type=Path, required=True)
    parser.add_argument("--reference-python", type=Path,
                        default=CACHE / "reference-venv" / "bin" / "python")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        where = Path(scratch)
        run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
             "-d", str(where / "reference"), *REFERENCE_WHEELS])
        reference_wheels = sum(p.stat().st_size for p in (where / "reference").glob("*.whl"))
        ours_python = our_venv(args.wheel.resolve(), args.reference_python, where)
        ours = sizes(ours_python, ["tensorstream"])
        theirs = sizes(args.reference_python, [w.split("==")[0] for w in REFERENCE_WHEELS])
        imports = interleaved_imports({"ours": ours_python, "reference": args.reference_python},
                                      args.runs)

    mb = lambda n: f"{n / 1e6:.1f} MB"  # noqa: E731
    ms = lambda s: f"{s * 1e3:.0f} ms"  # noqa: E731
    print("| | tensorstream (one wheel) | runai-model-streamer core + s3 + gcs + azure "
          "| reference ÷ ours |")
    print("|---|---:|---:|---:|")
    print(f"| wheel bytes | {mb(args.wheel.stat().st_size)} | {mb(reference_wheels)} | "
          f"{reference_wheels / args.wheel.stat().st_size:.1f} |")
    print(f"| installed bytes | {mb(ours['installed'])} | {mb(theirs['installed'])} | "
          f"{theirs['installed'] / ours['installed']:.1f} |")
    print(f"| + Python dependencies (besides numpy, torch) | {mb(ours['deps'])} "
          f"({len(ours['dep_names'])} packages) | {mb(theirs['deps'])} "
          f"({len(theirs['dep_names'])} packages) | |")
    for key, label in (("alone", "`import runai_model_streamer`"),
                       ("after_torch", "`import runai_model_streamer` after `import torch`")):
        o, t = imports["ours"][key], imports["reference"][key]
        print(f"| {label} (median of {args.runs}) | {ms(o)} | {ms(t)} | {t / o:.1f} |")
    print()
    print(f"reference's dependencies: {', '.join(theirs['dep_names'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
