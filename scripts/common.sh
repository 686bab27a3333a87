# Shared by the scripts in this folder: paths, and idempotent installation of what the
# project needs (Debian packages, the Python virtual environment). Sourced, not run.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Heavy Python dependencies (torch is several GB) live outside the checkout, reused for
# as long as python/requirements-dev.txt is unchanged.
TS_CACHE=${TENSORSTREAM_CACHE:-$HOME/.cache/tensorstream}
TS_VENV=${TENSORSTREAM_VENV:-$TS_CACHE/venv}
TS_PY=$TS_VENV/bin/python
JOBS=${JOBS:-$(nproc)}

log() { printf '\n== %s\n' "$*" >&2; }

# Debian packages for building and testing; installed only when missing.
ensure_debian_packages() {
  local wanted=(build-essential cmake ninja-build pkg-config libgtest-dev nlohmann-json3-dev
                libcurl4-openssl-dev libssl-dev libcli11-dev clang-14 libclang-rt-14-dev
                clang-format-14 python3-venv curl openssl)
  local missing=()
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

# The virtual environment with torch, safetensors, pytest…; rebuilt only when the
# requirements file changed since it was made.
ensure_venv() {
  local req=$REPO_ROOT/python/requirements-dev.txt
  local stamp=$TS_VENV/.requirements.sha256
  local want
  want=$(sha256sum "$req" | cut -d' ' -f1)
  if [ -x "$TS_PY" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return; fi
  log "preparing the Python environment in $TS_VENV (torch is large: first time only)"
  mkdir -p "$TS_CACHE"
  [ -x "$TS_PY" ] || python3 -m venv "$TS_VENV"
  "$TS_PY" -m pip install -q --upgrade pip
  "$TS_PY" -m pip install -q -r "$req"
  echo "$want" >"$stamp"
}

# Configures and builds one CMake build tree: build_tree DIR [cmake args…]
build_tree() {
  local dir=$1; shift
  cmake -S "$REPO_ROOT" -B "$dir" -G Ninja "$@" >/dev/null
  cmake --build "$dir" -j "$JOBS"
}

# Installs the Python package (and its C++ library) from the checkout into the venv.
install_python_package() {
  log "installing the tensorstream Python package into $TS_VENV"
  "$TS_PY" -m pip install -q --no-build-isolation --no-deps --force-reinstall "$REPO_ROOT"
}

# runai-model-streamer 0.17.1, the reference the drop-in must match, in a virtual
# environment of its own (the differential test and the benchmarks run it side by side
# with ours). It reuses the main venv's heavy packages (torch) through a .pth file that
# points at a folder of links to every entry of the main venv's site-packages except our
# own packages, so the reference's runai_model_streamer is the only one importable there.
# Rebuilt only when REFERENCE_PACKAGES changes; needs ensure_venv first.
# Its GCS and Azure extras import google-cloud-storage and azure-* from the main venv.
REFERENCE_PACKAGES="runai-model-streamer==0.17.1 runai-model-streamer-s3==0.17.1 \
runai-model-streamer-gcs==0.17.1 runai-model-streamer-azure==0.17.0 humanize==4.17.0"
TS_REFERENCE_VENV=${TENSORSTREAM_REFERENCE_VENV:-$TS_CACHE/reference-venv}
TS_REFERENCE_PY=$TS_REFERENCE_VENV/bin/python
ensure_reference_venv() {
  local stamp=$TS_REFERENCE_VENV/.packages
  local want="$REFERENCE_PACKAGES $(cat "$TS_VENV/.requirements.sha256" 2>/dev/null)"
  if [ -x "$TS_REFERENCE_PY" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return; fi
  log "preparing the reference's environment in $TS_REFERENCE_VENV"
  local ours base theirs shared=$TS_REFERENCE_VENV/shared-site
  ours=$("$TS_PY" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
  base=$("$TS_PY" -c 'import sys; print(sys.base_prefix)')
  "$base/bin/python3" -m venv --clear "$TS_REFERENCE_VENV"
  mkdir -p "$shared"
  local entry name
  for entry in "$ours"/*; do
    name=$(basename "$entry")
    case "$name" in
      tensorstream*|runai_model_streamer*|__pycache__|_distutils_hack|pip|pip-*|setuptools*|*.pth) ;;
      *) ln -s "$entry" "$shared/$name" ;;
    esac
  done
  theirs=$("$TS_REFERENCE_PY" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
  echo "$shared" >"$theirs/zz_shared_site.pth"
  # shellcheck disable=SC2086
  "$TS_REFERENCE_PY" -m pip install -q --no-deps $REFERENCE_PACKAGES
  "$TS_REFERENCE_PY" -c 'import runai_model_streamer, sys; assert sys.prefix in runai_model_streamer.__file__, runai_model_streamer.__file__'
  echo "$want" >"$stamp"
}
