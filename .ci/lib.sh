#!/usr/bin/env bash
# Sourced, never run: what the CI, release and benchmark scripts share.

# The Debian packages the CI scripts install where missing (.ci/tools.sh, .ci/arm64.sh), and so
# what .ci/bare.sh hides to stand for a fresh machine (tests/workflows.rs keeps this complete).
# shellcheck disable=SC2034 # used by the scripts that source this file
ci_apt_packages=(
  prometheus shellcheck libb64-0d chromium jq curl mesa-vulkan-drivers libvulkan1
  qemu-user qemu-user-binfmt gcc-aarch64-linux-gnu libc6-dev-arm64-cross
)

# Whether .ci/bare.sh can hide what CI installed here (it needs root and unshare(1)).
can_run_bare() {
  [ "$(id -u)" = 0 ] && command -v unshare >/dev/null
}

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

# predict_zero URL: POST the bundled digit zero to URL/v1/predict; fails unless it answers label 0.
predict_zero() {
  local url=$1
  curl -fsS "$url/v1/predict" -H 'content-type: application/json' --data-binary @tests/data/predict-zero.json \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); p=r["predictions"][0]; assert p["label"]=="0", r; print("predicted", p["label"], "on", r["backend"], "/", r["device"])'
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
