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

# wrk_summary REPORT: "requests/s,p50 ms,p99 ms,errors" from a `wrk --latency` report; errors
# counts non-2xx responses and socket errors.
wrk_summary() {
  local report=$1
  ms() { # wrk's latency (812.00us, 1.20ms, 2.01s) in milliseconds
    awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n *= 1; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
  }
  printf '%s,%s,%s,%s\n' \
    "$(awk '/^Requests\/sec:/ {print $2}' <<<"$report")" \
    "$(ms "$(awk '$1 == "50%" {print $2}' <<<"$report")")" \
    "$(ms "$(awk '$1 == "99%" {print $2}' <<<"$report")")" \
    "$(awk '/Non-2xx or 3xx responses:/ {e += $NF}
            /Socket errors:/ {for (i = 3; i <= NF; i++) {gsub(",", "", $i); if ($i ~ /^[0-9]+$/) e += $i}}
            END {print e + 0}' <<<"$report")"
}
