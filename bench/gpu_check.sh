#!/usr/bin/env bash
# The GPU check, one run on a CUDA machine (the H200 device machine: no internet, so what
# it needs travels with the working tree; prepare it here with bench/gpu_prepare.sh):
#   1. builds the library and CLI there (local files only: -DTENSORSTREAM_WITH_HTTP=OFF,
#      header-only dependencies from .gpu-deps/include)
#   2. runs the GPU tests (tests/gpu: bytes equal to safetensors' load_file on the GPU)
#   3. benchmarks loading a ~8 GB Llama-shaped file into the GPU, warm and cold, with both
#      GPU strategies (TENSORSTREAM_GPU_STRATEGY staging / register, and auto), against
#      safetensors, runai-model-streamer and fastsafetensors (wheels from .whl/)
# and prints a short table last. Usage (from the repository root):
#   bash bench/gpu_check.sh [BYTES] [RUNS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bytes=${1:-8000000000}
runs=${2:-3}
out=${OUT:-/tmp/tensorstream-gpu-out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
nproc; python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)"

echo "== build"
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DTENSORSTREAM_WITH_HTTP=OFF \
  -DTENSORSTREAM_BUILD_TESTS=OFF -DCMAKE_CXX_FLAGS="-isystem $PWD/.gpu-deps/include" >/dev/null
cmake --build build-gpu -j "$(nproc)" 2>&1 | tail -2
export TENSORSTREAM_LIBRARY=$PWD/build-gpu/libtensorstream.so TENSORSTREAM_CLI=$PWD/build-gpu/tensorstream
export PYTHONPATH=$PWD/python${PYTHONPATH:+:$PYTHONPATH}

peer_site=/tmp/tensorstream-peers
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$peer_site" .whl/*.whl || true
fi

echo "== GPU tests"
python3 -m pytest -q tests/gpu 2>&1 | tee "$out/gpu_tests.log" | tail -15

echo "== CLI to the GPU"
python3 bench/bench_gpu.py --bytes "$bytes" --runs 0 >/dev/null 2>&1 || true
model=/tmp/tensorstream-bench/llama.safetensors
for strategy in staging register; do
  for c in 8 16 32; do
    echo "-- $strategy, concurrency $c, warm"
    TENSORSTREAM_GPU_STRATEGY=$strategy "$TENSORSTREAM_CLI" stream --device cuda:0 --concurrency "$c" "$model"
  done
done

echo "== benchmark"
PEER_SITE=$peer_site python3 bench/bench_gpu.py --bytes "$bytes" --runs "$runs" 2>&1 | tee "$out/bench_gpu.md"
