#!/usr/bin/env bash
# The main job on a fresh machine: install everything, build, generate a sample
# Llama-shaped model on local disk, stream it and print the throughput.
#   bash scripts/quickstart.sh [MODEL_BYTES]      (default 1 GB)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bytes=${1:-1000000000}

ensure_debian_packages
ensure_venv
log "building (build/)"
build_tree "$REPO_ROOT/build" -DCMAKE_BUILD_TYPE=Release
install_python_package

model=$TS_CACHE/sample/llama-$bytes.safetensors
if [ ! -f "$model" ]; then
  log "generating a Llama-shaped sample model of ~$bytes bytes: $model"
  "$REPO_ROOT/build/tests/tensorstream_make_fixture" model "$model" "$bytes"
fi
log "tensor table (first lines)"
"$REPO_ROOT/build/tensorstream" inspect "$model" | { head -5; tail -1; }
log "streaming with the CLI (verifying every byte)"
"$REPO_ROOT/build/tensorstream" stream --verify "$model"
log "streaming from Python through the runai_model_streamer drop-in"
"$TS_PY" - "$model" <<'PY'
import sys, time
import torch  # imported before the timer, as in a server that already runs torch
from runai_model_streamer import SafetensorsStreamer
start, total = time.perf_counter(), 0
with SafetensorsStreamer() as streamer:
    streamer.stream_file(sys.argv[1])
    for name, tensor in streamer.get_tensors():
        total += tensor.numel() * tensor.element_size()
seconds = time.perf_counter() - start
print(f"python drop-in: {total / 1e9:.2f} GB in {seconds:.2f} s: {total / seconds / 1e9:.2f} GB/s")
PY
