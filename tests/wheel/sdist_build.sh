#!/usr/bin/env bash
# The sdist builds from source with the README's prerequisites (CMake, Ninja, a C++20
# compiler, the libcurl, OpenSSL and nlohmann-json development packages): installs it into
# a fresh virtual environment, with scikit-build-core as the only build requirement, and
# streams a local file with the result (bytes compared with safetensors').
#
#   tests/wheel/sdist_build.sh dist/tensorstream-<version>.tar.gz
#
# TENSORSTREAM_PYTHON (default ~/.cache/tensorstream/venv/bin/python) makes the fixture.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SDIST=$(realpath "${1:?usage: sdist_build.sh SDIST}")
PYTHON=${TENSORSTREAM_PYTHON:-$HOME/.cache/tensorstream/venv/bin/python}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$PYTHON" "$HERE/make_fixture.py" "$WORK"
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q "scikit-build-core==1.1.2" \
  "numpy==$("$PYTHON" -c 'import numpy; print(numpy.__version__)')"
echo "sdist_build: building $(basename "$SDIST") from source" >&2
"$WORK/venv/bin/python" -m pip install -q --no-build-isolation "$SDIST"
"$WORK/venv/bin/python" "$HERE/check_installed_wheel.py" --built-from-source "$WORK/expected.json"
