# Shared by the scripts that run test servers on loopback (s3_server.sh, gcs_server.sh):
# the Go toolchain, a process started in the background with its pid in a directory,
# waiting for its port, stopping it, and the command line every such script takes. Source
# it; it defines functions only.

# Puts the Go toolchain on PATH (these machines keep it in /usr/local/go) or fails.
require_go() {
  command -v go >/dev/null || PATH=$PATH:/usr/local/go/bin
  command -v go >/dev/null || { log "go is required to build $1"; exit 1; }
}

# server_running DIR NAME: whether DIR/NAME.pid names a live process.
server_running() {
  [[ -f $1/$2.pid ]] && kill -0 "$(cat "$1/$2.pid")" 2>/dev/null
}

# server_wait DIR NAME URL: waits up to 60 s until URL answers with any HTTP status. On
# failure prints the server's last log lines, stops it and exits.
server_wait() {
  local dir=$1 name=$2 url=$3
  for _ in $(seq 1 120); do
    if curl -s -o /dev/null -m 2 "$url"; then return 0; fi
    if ! server_running "$dir" "$name"; then
      log "$name exited; last log lines:"; tail -20 "$dir/$name.log" >&2; exit 1
    fi
    sleep 0.5
  done
  log "$url did not answer within 60 s"; tail -20 "$dir/$name.log" >&2
  server_stop "$dir" "$name"
  exit 1
}

# server_stop DIR NAME: stops the process of DIR/NAME.pid (TERM, then KILL after 10 s).
server_stop() {
  local dir=$1 name=$2 pid
  [[ -n $dir && -f $dir/$name.pid ]] || { log "nothing to stop"; return 0; }
  pid=$(cat "$dir/$name.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$dir/$name.pid"
  log "stopped"
}

# server_main "$@": the command line of a server script, which defines install, start,
# stop and env_lines.
server_main() {
  case ${1:-} in
    install) install ;;
    start) shift; start "$@" ;;
    stop) shift; stop "$@" ;;
    env) shift; env_lines "$@" ;;
    *) echo "usage: $0 install | start PORT DIR | stop [DIR] | env PORT" >&2; exit 2 ;;
  esac
}
