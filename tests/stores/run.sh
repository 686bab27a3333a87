#!/usr/bin/env bash
# Runs the tests against real stores end to end, non-interactively, on loopback only:
# installs the servers if needed (scripts/{s3,gcs,azure}_server.sh install: SeaweedFS and
# fake-gcs-server built once into ~/.cache/tensorstream/bin, Azurite from npm into
# ~/.cache/tensorstream/azurite), starts them on free ports, uploads the S3 fixtures with
# boto3 and starts a fault-injecting proxy for the S3Integration* GoogleTests, then runs
# pytest tests/stores: the conformance suite (every case once per backend: local, s3, gcs,
# azure) and the CLI and Python front tests (the
# tensorstream CLI next to the test binary, the installed Python package). Stops
# everything whatever happens.
#
#   tests/stores/run.sh [path/to/tensorstream_tests]   (default build/tests/...)
#
# Needs: go and npm (first run only: ~6 min to build SeaweedFS, ~1 min each for
# fake-gcs-server and Azurite), curl, and a Python with boto3, azure-storage-blob, torch,
# safetensors, pytest and this package installed
# (TENSORSTREAM_PYTHON, default ~/.cache/tensorstream/venv/bin/python). TENSORSTREAM_CLI
# overrides the CLI's path. Extra arguments for pytest go in TENSORSTREAM_PYTEST_ARGS.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TESTS=${1:-$ROOT/build/tests/tensorstream_tests}
PYTHON=${TENSORSTREAM_PYTHON:-$HOME/.cache/tensorstream/venv/bin/python}
[[ -x $TESTS ]] || { echo "tests/stores/run.sh: no test binary at $TESTS" >&2; exit 2; }
CLI=${TENSORSTREAM_CLI:-$(dirname "$TESTS")/../tensorstream}
[[ -x $CLI ]] || { echo "tests/stores/run.sh: no tensorstream CLI at $CLI" >&2; exit 2; }
[[ -x $PYTHON ]] || PYTHON=python3
"$PYTHON" -c 'import boto3, pytest, safetensors, tensorstream, torch' || {
  echo "tests/stores/run.sh: $PYTHON lacks boto3, pytest, safetensors, torch or tensorstream" \
       "(pip install the package)" >&2
  exit 2
}

WORK=$(mktemp -d)
PROXY_PID=
cleanup() {
  [[ -n $PROXY_PID ]] && kill "$PROXY_PID" 2>/dev/null || true
  "$ROOT/scripts/s3_server.sh" stop "$WORK/s3" || true
  "$ROOT/scripts/gcs_server.sh" stop "$WORK/gcs" || true
  "$ROOT/scripts/azure_server.sh" stop "$WORK/azure" || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# SeaweedFS's ports, and PORT+5 (fake-gcs-server) and PORT+6 (Azurite).
PORT=$("$ROOT/scripts/s3_server.sh" free-port 5 6)
[[ -n $PORT ]] || { echo "tests/stores/run.sh: no free ports" >&2; exit 1; }
GCS_PORT=$((PORT + 5))
AZURE_PORT=$((PORT + 6))

"$ROOT/scripts/s3_server.sh" install
"$ROOT/scripts/gcs_server.sh" install
"$ROOT/scripts/azure_server.sh" install
"$ROOT/scripts/s3_server.sh" start "$PORT" "$WORK/s3"
"$ROOT/scripts/gcs_server.sh" start "$GCS_PORT" "$WORK/gcs"
"$ROOT/scripts/azure_server.sh" start "$AZURE_PORT" "$WORK/azure"
eval "$("$ROOT/scripts/s3_server.sh" env "$PORT")"
eval "$("$ROOT/scripts/gcs_server.sh" env "$GCS_PORT")"
eval "$("$ROOT/scripts/azure_server.sh" env "$AZURE_PORT")"

BUCKET=tsfixtures
# The first writes after start can fail while SeaweedFS elects its lock server; retry.
for attempt in 1 2 3; do
  if "$PYTHON" "$ROOT/tests/stores/setup_fixtures.py" --endpoint "$AWS_ENDPOINT_URL" \
      --bucket "$BUCKET" --local-copy "$WORK/model.bin"; then
    break
  fi
  [[ $attempt == 3 ]] && { echo "tests/stores/run.sh: fixture upload failed" >&2; exit 1; }
  sleep 3
done
curl -sf -X POST -H 'Content-Type: application/json' -d "{\"name\": \"$BUCKET\"}" \
  "http://127.0.0.1:$GCS_PORT/storage/v1/b" > /dev/null
TENSORSTREAM_TEST_AZURE_CONTAINER=$BUCKET "$PYTHON" -c "
import sys; sys.path.insert(0, '$ROOT/tests/stores')
from stores import AzureStore; AzureStore().create_container()"

"$PYTHON" "$ROOT/tests/stores/fault_proxy.py" --upstream-port "$PORT" --max-seconds 900 \
  > "$WORK/proxy.log" 2>&1 &
PROXY_PID=$!
for _ in $(seq 1 50); do grep -q READY "$WORK/proxy.log" 2>/dev/null && break; sleep 0.1; done
PROXY_PORT=$(sed -n 's/^READY //p' "$WORK/proxy.log")
[[ -n $PROXY_PORT ]] || { echo "tests/stores/run.sh: the fault proxy did not start" >&2; exit 1; }

TENSORSTREAM_TEST_S3_ENDPOINT=$AWS_ENDPOINT_URL \
TENSORSTREAM_TEST_S3_BUCKET=$BUCKET \
TENSORSTREAM_TEST_S3_LOCAL_COPY=$WORK/model.bin \
TENSORSTREAM_TEST_S3_PROXY_ENDPOINT=http://127.0.0.1:$PROXY_PORT \
  "$TESTS" --gtest_filter='S3Integration*'

# The conformance suite and the fronts: each test makes its own prefix in the buckets and
# starts its own fault proxies.
# shellcheck disable=SC2086  # TENSORSTREAM_PYTEST_ARGS is a list of words
TENSORSTREAM_TEST_S3_BUCKET=$BUCKET TENSORSTREAM_TEST_GCS_BUCKET=$BUCKET \
TENSORSTREAM_TEST_AZURE_CONTAINER=$BUCKET \
TENSORSTREAM_TEST_REQUIRE_STORES=1 TENSORSTREAM_CLI=$CLI \
  "$PYTHON" -m pytest -q -p no:cacheprovider ${TENSORSTREAM_PYTEST_ARGS:-} "$ROOT/tests/stores"
