#!/usr/bin/env bash
# An Azure Blob Storage emulator on loopback for the Azure tests: Azurite (Microsoft's own),
# installed from npm and cached outside the repository.
#
#   scripts/azure_server.sh install          npm install it into $TENSORSTREAM_CACHE/azurite
#                                            (idempotent; ~1 min the first time)
#   scripts/azure_server.sh start PORT DIR   serve the Blob API over plain HTTP on
#                                            127.0.0.1:PORT, blobs in memory, log in DIR
#   scripts/azure_server.sh stop [DIR]       stop it (default: the last one started)
#   scripts/azure_server.sh env PORT         print the client settings (export lines)
#
# Azurite checks Shared Key signatures with its well-known development account
# (devstoreaccount1, the key below, published by Microsoft: no secret), so the
# connection string it prints exercises our signing on every request.
set -euo pipefail

AZURITE_VERSION=3.37.0
CACHE=${TENSORSTREAM_CACHE:-$HOME/.cache/tensorstream}
PREFIX=$CACHE/azurite
BIN=$PREFIX/node_modules/.bin/azurite-blob
STATE=${TMPDIR:-/tmp}/tensorstream-azure-server.dir
DEV_ACCOUNT=devstoreaccount1
DEV_KEY=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==

log() { echo "azure_server: $*" >&2; }
source "$(dirname "${BASH_SOURCE[0]}")/server_common.sh"

install() {
  if [[ -x $BIN && -f $PREFIX/.version && $(cat "$PREFIX/.version") == "$AZURITE_VERSION" ]]; then
    return 0
  fi
  command -v npm >/dev/null || { log "npm is required to install Azurite"; exit 1; }
  local start
  start=$(date +%s)
  mkdir -p "$PREFIX"
  log "installing azurite@$AZURITE_VERSION from npm"
  npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION" >&2
  echo "$AZURITE_VERSION" > "$PREFIX/.version"
  log "installed $BIN in $(( $(date +%s) - start )) s"
}

start() {
  local port=${1:?usage: start PORT DIR} dir=${2:?usage: start PORT DIR}
  install
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if server_running "$dir" azurite; then
    log "already running (pid $(cat "$dir/azurite.pid"))"
    return 0
  fi
  # In memory (nothing left behind), signatures checked, no telemetry.
  nohup "$BIN" --blobHost 127.0.0.1 --blobPort "$port" --inMemoryPersistence --disableTelemetry \
    > "$dir/azurite.log" 2>&1 &
  echo $! > "$dir/azurite.pid"
  echo "$dir" > "$STATE"
  server_wait "$dir" azurite "http://127.0.0.1:$port/$DEV_ACCOUNT?comp=list"
  log "Azurite on http://127.0.0.1:$port/$DEV_ACCOUNT (pid $(cat "$dir/azurite.pid"))"
}

stop() {
  local dir=${1:-}
  [[ -z $dir && -f $STATE ]] && dir=$(cat "$STATE")
  server_stop "$dir" azurite
}

env_lines() {
  local port=${1:?usage: env PORT}
  echo "export AZURE_STORAGE_CONNECTION_STRING='DefaultEndpointsProtocol=http;AccountName=$DEV_ACCOUNT;AccountKey=$DEV_KEY;BlobEndpoint=http://127.0.0.1:$port/$DEV_ACCOUNT;'"
}

server_main "$@"
