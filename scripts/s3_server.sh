#!/usr/bin/env bash
# A real S3 server on loopback for the S3 tests: SeaweedFS, built from the Go module proxy
# and cached outside the repository.
#
#   scripts/s3_server.sh install          build weed into $TENSORSTREAM_CACHE/bin (idempotent;
#                                         ~6 min of compiling on 2 cores the first time)
#   scripts/s3_server.sh start PORT DIR   start it: S3 on 127.0.0.1:PORT, data and log in DIR,
#                                         ports PORT+1..PORT+3 (and +10000) for its internals
#   scripts/s3_server.sh stop [DIR]       stop it (default: the last one started)
#   scripts/s3_server.sh env PORT         print the client settings (export lines)
#   scripts/s3_server.sh free-port [OFFSET...]  print a PORT whose PORT..PORT+3 and their
#                                         +10000 twins are free on loopback, and PORT+OFFSET
#                                         for each OFFSET too (ports for other servers)
#
# Signatures are checked: the server knows one identity (keys below, test-only values) with
# full rights, plus anonymous read/list for the unsigned-request test.
# Virtual-hosted requests work for BUCKET.localhost:PORT (-s3.domainName=localhost).
# Telemetry is switched off: nothing but loopback is ever contacted.
set -euo pipefail

SEAWEEDFS_MODULE=github.com/seaweedfs/seaweedfs
# The version the Go module proxy offers for this project (a pseudo-version of 4.53).
SEAWEEDFS_VERSION=v0.0.0-20261109003541-7506e5f91cd6
CACHE=${TENSORSTREAM_CACHE:-$HOME/.cache/tensorstream}
BIN=$CACHE/bin/weed
STATE=${TMPDIR:-/tmp}/tensorstream-s3-server.dir

TEST_ACCESS_KEY=tensorstream-test-key
TEST_SECRET_KEY=tensorstream-test-secret

log() { echo "s3_server: $*" >&2; }
source "$(dirname "${BASH_SOURCE[0]}")/server_common.sh"

install() {
  if [[ -x $BIN && -f $BIN.version && $(cat "$BIN.version") == "$SEAWEEDFS_VERSION" ]]; then
    return 0
  fi
  require_go SeaweedFS
  mkdir -p "$CACHE/bin"
  # `go install module/weed@version` refuses modules whose go.mod has replace directives
  # (SeaweedFS has one), so build the downloaded module as the main module instead.
  local dir work start
  start=$(date +%s)
  log "downloading $SEAWEEDFS_MODULE@$SEAWEEDFS_VERSION"
  dir=$(go mod download -json "$SEAWEEDFS_MODULE@$SEAWEEDFS_VERSION" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -n $dir && -d $dir ]] || { log "go mod download failed"; exit 1; }
  work=$(mktemp -d)
  # Cleared as it runs: a RETURN trap stays set and would fire again, with work out of
  # scope (an unbound variable under set -u), when the caller returns.
  trap 'rm -rf "$work"; trap - RETURN' RETURN
  cp -r "$dir/." "$work/"
  chmod -R u+w "$work"
  log "building weed (several minutes on 2 cores)"
  (cd "$work" && GOFLAGS=-mod=mod nice -n 10 go build -o "$BIN.tmp" ./weed)
  mv "$BIN.tmp" "$BIN"
  echo "$SEAWEEDFS_VERSION" > "$BIN.version"
  log "installed $BIN in $(( $(date +%s) - start )) s"
}

write_config() {
  cat > "$1" <<EOF
{
  "identities": [
    {
      "name": "tensorstream-test",
      "credentials": [{"accessKey": "$TEST_ACCESS_KEY", "secretKey": "$TEST_SECRET_KEY"}],
      "actions": ["Admin", "Read", "List", "Tagging", "Write"]
    },
    {
      "name": "anonymous",
      "actions": ["Read", "List"]
    }
  ]
}
EOF
}

start() {
  local port=${1:?usage: start PORT DIR} dir=${2:?usage: start PORT DIR}
  install
  mkdir -p "$dir/data"
  dir=$(cd "$dir" && pwd)
  if server_running "$dir" weed; then
    log "already running (pid $(cat "$dir/weed.pid"))"
    return 0
  fi
  write_config "$dir/s3.json"
  # Every port explicit, on loopback: the defaults would collide with other services.
  nohup "$BIN" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$dir/data" \
    -master.port=$((port + 1)) -volume.port=$((port + 2)) -filer.port=$((port + 3)) \
    -master.telemetry=false -master.volumeSizeLimitMB=64 -volume.max=0 \
    -s3 -s3.port="$port" -s3.config="$dir/s3.json" -s3.domainName=localhost \
    -s3.port.iceberg=0 -s3.port.lance=0 \
    > "$dir/weed.log" 2>&1 &
  echo $! > "$dir/weed.pid"
  echo "$dir" > "$STATE"
  # Ready when the S3 port answers with an HTTP status (whether the filer accepts writes
  # yet is checked by the caller's first upload).
  server_wait "$dir" weed "http://127.0.0.1:$port/"
  log "SeaweedFS S3 on http://127.0.0.1:$port (pid $(cat "$dir/weed.pid"), log $dir/weed.log)"
}

stop() {
  local dir=${1:-}
  [[ -z $dir && -f $STATE ]] && dir=$(cat "$STATE")
  server_stop "$dir" weed
}

env_lines() {
  local port=${1:?usage: env PORT}
  echo "export AWS_ENDPOINT_URL=http://127.0.0.1:$port"
  echo "export AWS_ACCESS_KEY_ID=$TEST_ACCESS_KEY"
  echo "export AWS_SECRET_ACCESS_KEY=$TEST_SECRET_KEY"
  echo "export AWS_REGION=us-east-1"
  echo "export AWS_EC2_METADATA_DISABLED=true"
}

free_port() {
  python3 - "$@" <<'PY'
import random, socket, sys
extra = [int(offset) for offset in sys.argv[1:]]
def free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
for _ in range(200):
    base = random.randrange(20000, 30000, 10)
    if all(free(base + d) and free(base + d + 10000) for d in range(4)) and \
            all(free(base + d) for d in extra):
        print(base)
        sys.exit(0)
sys.exit("s3_server: no free ports")
PY
}

if [[ ${1:-} == free-port ]]; then
  shift
  free_port "$@"
  exit
fi
server_main "$@"
