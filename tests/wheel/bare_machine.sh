#!/usr/bin/env bash
# The wheel on a bare machine: installs it into a fresh virtual environment on a system
# where libcurl and OpenSSL cannot be found (a private mount namespace hides them, see
# hide_system_libraries.sh), then streams a local file and an s3:// object from a SeaweedFS
# server on loopback, over HTTP and over HTTPS (a TLS proxy in front of it), and runs the
# CLI; every tensor's bytes are compared with safetensors' (check_installed_wheel.py).
#
#   tests/wheel/bare_machine.sh dist/tensorstream-*.whl
#
# Needs: unshare (util-linux) with mount namespaces, openssl (to make the test CA), and
# TENSORSTREAM_PYTHON (default ~/.cache/tensorstream/venv/bin/python) with boto3, numpy
# and safetensors for the fixtures; the fresh environment gets numpy and the wheel only.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WHEEL=$(realpath "${1:?usage: bare_machine.sh WHEEL}")
PYTHON=${TENSORSTREAM_PYTHON:-$HOME/.cache/tensorstream/venv/bin/python}
WORK=$(mktemp -d)
PROXY_PID=
cleanup() {
  [[ -n $PROXY_PID ]] && kill "$PROXY_PID" 2>/dev/null || true
  "$ROOT/scripts/s3_server.sh" stop "$WORK/s3" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
log() { echo "bare_machine: $*" >&2; }

PORT=$("$ROOT/scripts/s3_server.sh" free-port)
"$ROOT/scripts/s3_server.sh" start "$PORT" "$WORK/s3" >/dev/null
eval "$("$ROOT/scripts/s3_server.sh" env "$PORT")"

log "fixtures: a safetensors file, uploaded to s3://bare-machine/model.safetensors"
"$PYTHON" "$HERE/make_fixture.py" "$WORK" --upload s3://bare-machine/model.safetensors

log "a TLS proxy in front of the server, with a test CA (and an unrelated one)"
for name in ca other_ca; do
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=tensorstream test $name" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    -keyout "$WORK/$name.key" -out "$WORK/$name.pem" 2>/dev/null
done
"$PYTHON" "$ROOT/tests/stores/fault_proxy.py" --upstream-port "$PORT" --plan ok \
  --tls-cert "$WORK/ca.pem" --tls-key "$WORK/ca.key" --max-seconds 900 >"$WORK/proxy.log" 2>&1 &
PROXY_PID=$!
for _ in $(seq 1 50); do grep -q READY "$WORK/proxy.log" 2>/dev/null && break; sleep 0.1; done
PROXY_PORT=$(sed -n 's/^READY //p' "$WORK/proxy.log")
[[ -n $PROXY_PORT ]] || { log "the TLS proxy did not start"; cat "$WORK/proxy.log" >&2; exit 1; }
"$PYTHON" - "$WORK" "$PORT" "$PROXY_PORT" <<'PY'
import json, sys
from pathlib import Path
work, port, proxy = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
spec = json.loads((work / "expected.json").read_text())
spec.update(http_endpoint=f"http://127.0.0.1:{port}", https_endpoint=f"https://127.0.0.1:{proxy}",
            ca=str(work / "ca.pem"), other_ca=str(work / "other_ca.pem"))
(work / "expected.json").write_text(json.dumps(spec))
PY

# numpy for the fresh environment, fetched now: inside, pip gets no index and no TLS.
"$PYTHON" -m pip download -q --only-binary :all: -d "$WORK/wheelhouse" \
  "numpy==$("$PYTHON" -c 'import numpy; print(numpy.__version__)')"
python3 -m venv "$WORK/venv"

log "installing the wheel into a fresh environment, and streaming, without libcurl and OpenSSL"
unshare --mount --map-root-user --propagation private \
  bash "$HERE/hide_system_libraries.sh" "$WORK" "$WORK/ca.pem" -- bash -c '
    set -euo pipefail
    "$1/venv/bin/python" -m pip install -q --no-index --find-links "$1/wheelhouse" "$2"
    "$1/venv/bin/python" "$3" "$1/expected.json"' _ "$WORK" "$WHEEL" "$HERE/check_installed_wheel.py"
