#!/usr/bin/env bash
# A Google Cloud Storage emulator on loopback for the GCS tests: fake-gcs-server, installed
# from the Go module proxy and cached outside the repository.
#
#   scripts/gcs_server.sh install          go install it into $TENSORSTREAM_CACHE/bin
#                                          (idempotent; ~1 min the first time)
#   scripts/gcs_server.sh start PORT DIR   serve the JSON and XML APIs over plain HTTP on
#                                          127.0.0.1:PORT, objects in memory, log in DIR
#   scripts/gcs_server.sh stop [DIR]       stop it (default: the last one started)
#   scripts/gcs_server.sh env PORT         print the client settings (export lines)
#
# The emulator accepts every request, signed or not: access-denied cases are tested
# through the fault proxy (tests/stores/fault_proxy.py) and a token endpoint of the tests.
set -euo pipefail

FAKE_GCS_MODULE=github.com/fsouza/fake-gcs-server
FAKE_GCS_VERSION=v1.56.1
CACHE=${TENSORSTREAM_CACHE:-$HOME/.cache/tensorstream}
BIN=$CACHE/bin/fake-gcs-server
STATE=${TMPDIR:-/tmp}/tensorstream-gcs-server.dir

log() { echo "gcs_server: $*" >&2; }
source "$(dirname "${BASH_SOURCE[0]}")/server_common.sh"

install() {
  if [[ -x $BIN && -f $BIN.version && $(cat "$BIN.version") == "$FAKE_GCS_VERSION" ]]; then
    return 0
  fi
  require_go fake-gcs-server
  mkdir -p "$CACHE/bin"
  local start gobin
  start=$(date +%s)
  gobin=$(mktemp -d)
  # Cleared as it runs: a RETURN trap stays set and would fire again, with gobin out of
  # scope (an unbound variable under set -u), when the caller returns.
  trap 'rm -rf "$gobin"; trap - RETURN' RETURN
  log "building $FAKE_GCS_MODULE@$FAKE_GCS_VERSION"
  GOBIN=$gobin nice -n 10 go install "$FAKE_GCS_MODULE@$FAKE_GCS_VERSION"
  mv "$gobin/fake-gcs-server" "$BIN"
  echo "$FAKE_GCS_VERSION" > "$BIN.version"
  log "installed $BIN in $(( $(date +%s) - start )) s"
}

start() {
  local port=${1:?usage: start PORT DIR} dir=${2:?usage: start PORT DIR}
  install
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if server_running "$dir" fake-gcs-server; then
    log "already running (pid $(cat "$dir/fake-gcs-server.pid"))"
    return 0
  fi
  # -public-host makes the XML API (GET /BUCKET/OBJECT) answer for this address too.
  nohup "$BIN" -scheme http -host 127.0.0.1 -port "$port" -public-host "127.0.0.1:$port" \
    -backend memory -log-level warn > "$dir/fake-gcs-server.log" 2>&1 &
  echo $! > "$dir/fake-gcs-server.pid"
  echo "$dir" > "$STATE"
  server_wait "$dir" fake-gcs-server "http://127.0.0.1:$port/storage/v1/b"
  log "fake-gcs-server on http://127.0.0.1:$port (pid $(cat "$dir/fake-gcs-server.pid"))"
}

stop() {
  local dir=${1:-}
  [[ -z $dir && -f $STATE ]] && dir=$(cat "$STATE")
  server_stop "$dir" fake-gcs-server
}

env_lines() {
  local port=${1:?usage: env PORT}
  echo "export STORAGE_EMULATOR_HOST=127.0.0.1:$port"
}

server_main "$@"
