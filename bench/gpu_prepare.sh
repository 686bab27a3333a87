#!/usr/bin/env bash
# Run here (with internet to PyPI) before bench/gpu_check.sh on the device machine: copies
# the header-only build dependencies into .gpu-deps/ and downloads the peers' wheels for
# Python 3.12 into .whl/ (both git-ignored; name them in the device tool's `carry`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p .gpu-deps/include .whl
cp -r /usr/include/nlohmann /usr/include/CLI .gpu-deps/include/
for spec in runai-model-streamer==0.17.1 humanize==4.17.0 fastsafetensors==0.5.0; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "$spec" || echo "no wheel for $spec"
done
ls -la .gpu-deps/include .whl
