#!/usr/bin/env bash
# Sourced, never run: what the CI, release and benchmark scripts share.

# Run a command as root: directly when we are root (the local CI), through sudo otherwise (a
# GitHub-hosted runner).
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# wait_ready URL [TIMEOUT_S] [ALIVE_CMD...]: poll URL/health/ready until it answers 2xx.
# Returns 1 after TIMEOUT_S (default 60) seconds, or 2 as soon as ALIVE_CMD (e.g. `kill -0 PID`)
# fails: a server that has exited will never be ready.
wait_ready() {
  local url=$1 timeout=${2:-60}
  shift $(($# < 2 ? $# : 2))
  local deadline=$(($(date +%s) + timeout))
  until curl -fs -o /dev/null "$url/health/ready"; do
    if [ $# -gt 0 ] && ! "$@" >/dev/null 2>&1; then
      echo "wait_ready: $url: the server exited before it was ready" >&2
      return 2
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "wait_ready: $url: not ready after ${timeout}s" >&2
      return 1
    fi
    sleep 0.01
  done
}

# stop_server: SIGTERM the background server whose PID is in $server, wait for it, forget it.
stop_server() {
  if [ -n "${server:-}" ]; then
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  server=""
}
