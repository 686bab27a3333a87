#!/usr/bin/env bash
# Runs the S3 integration tests end to end, non-interactively, on loopback only:
# builds/installs SeaweedFS if needed (scripts/s3_server.sh install), starts it on free
# ports, uploads the fixtures with boto3, starts the fault-injecting proxy, runs the
# S3Integration* GoogleTests, then the CLI and Python front tests (pytest tests/s3: the
# tensorstream CLI next to the test binary, the installed Python package), and stops
# everything whatever happens.
#
#   tests/s3/run.sh [path/to/tensorstream_tests]   (default build/tests/...)
#
# Needs: go (first run only, ~6 min to build SeaweedFS), curl, and a Python with boto3,
# torch, safetensors, pytest and this package installed (TENSORSTREAM_PYTHON, default
# ~/.cache/tensorstream/venv/bin/python). TENSORSTREAM_CLI overrides the CLI's path.
# Takes ~45 s once SeaweedFS is installed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TESTS=${1:-$ROOT/build/tests/tensorstream_tests}
PYTHON=${TENSORSTREAM_PYTHON:-$HOME/.cache/tensorstream/venv/bin/python}
[[ -x $TESTS ]] || { echo "tests/s3/run.sh: no test binary at $TESTS" >&2; exit 2; }
CLI=${TENSORSTREAM_CLI:-$(dirname "$TESTS")/../tensorstream}
[[ -x $CLI ]] || { echo "tests/s3/run.sh: no tensorstream CLI at $CLI" >&2; exit 2; }
[[ -x $PYTHON ]] || PYTHON=python3
"$PYTHON" -c 'import boto3, pytest, safetensors, tensorstream, torch' || {
  echo "tests/s3/run.sh: $PYTHON lacks boto3, pytest, safetensors, torch or tensorstream" \
       "(pip install the package)" >&2
  exit 2
}

WORK=$(mktemp -d)
PROXY_PID=
cleanup() {
  [[ -n $PROXY_PID ]] && kill "$PROXY_PID" 2>/dev/null || true
  "$ROOT/scripts/s3_server.sh" stop "$WORK/server" || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# A base port with PORT..PORT+3 and their +10000 gRPC twins free, plus one for the proxy.
PORT=$("$PYTHON" - <<'PY'
import random, socket
def free(p):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", p)); return True
        except OSError:
            return False
for _ in range(200):
    base = random.randrange(20000, 30000, 10)
    if all(free(base + d) and free(base + d + 10000) for d in range(4)) and free(base + 5):
        print(base); break
PY
)
[[ -n $PORT ]] || { echo "tests/s3/run.sh: no free ports" >&2; exit 1; }
PROXY_PORT=$((PORT + 5))

"$ROOT/scripts/s3_server.sh" install
"$ROOT/scripts/s3_server.sh" start "$PORT" "$WORK/server"
eval "$("$ROOT/scripts/s3_server.sh" env "$PORT")"

BUCKET=tsfixtures
# The first writes after start can fail while SeaweedFS elects its lock server; retry.
for attempt in 1 2 3; do
  if "$PYTHON" "$ROOT/tests/s3/setup_fixtures.py" --endpoint "$AWS_ENDPOINT_URL" \
      --bucket "$BUCKET" --local-copy "$WORK/model.bin"; then
    break
  fi
  [[ $attempt == 3 ]] && { echo "tests/s3/run.sh: fixture upload failed" >&2; exit 1; }
  sleep 3
done

"$PYTHON" "$ROOT/tests/s3/fault_proxy.py" --listen-port "$PROXY_PORT" --upstream-port "$PORT" \
  --max-seconds 600 > "$WORK/proxy.log" 2>&1 &
PROXY_PID=$!
for _ in $(seq 1 50); do grep -q READY "$WORK/proxy.log" 2>/dev/null && break; sleep 0.1; done

TENSORSTREAM_TEST_S3_ENDPOINT=$AWS_ENDPOINT_URL \
TENSORSTREAM_TEST_S3_BUCKET=$BUCKET \
TENSORSTREAM_TEST_S3_LOCAL_COPY=$WORK/model.bin \
TENSORSTREAM_TEST_S3_PROXY_ENDPOINT=http://127.0.0.1:$PROXY_PORT \
  "$TESTS" --gtest_filter='S3Integration*'

# The fronts: each test uploads its own objects under a fresh prefix of the bucket.
TENSORSTREAM_TEST_S3_BUCKET=$BUCKET TENSORSTREAM_CLI=$CLI \
  "$PYTHON" -m pytest -q -p no:cacheprovider "$ROOT/tests/s3"
