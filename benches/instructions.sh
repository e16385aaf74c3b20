#!/usr/bin/env bash
# Instructions per single-input prediction, counted by valgrind's callgrind: deterministic where
# wrk's requests per second are not, so a change of a few percent shows on a noisy machine.
# One inference thread, wrk -t1 -c4 (CONNECTIONS=64: batches fill, so per-request costs show); counting starts after 2 s of warm-up and lasts 8 s, and the
# whole process is counted (accept loop, router, batcher, forward pass).
#
#   bash benches/instructions.sh target/dist/ember-serve [server flags...]
#
# Needs valgrind (callgrind_control) and wrk. A release binary runs ~50x slower under it.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=.ci/lib.sh
source .ci/lib.sh
BIN=${1:?usage: benches/instructions.sh BIN [server flags...]}
shift
PORT=18193
CONNECTIONS=${CONNECTIONS:-4}
command -v callgrind_control >/dev/null || { echo "valgrind not found: apt-get install valgrind" >&2; exit 1; }
work=$(mktemp -d)
body=$(tr -d '\n' <tests/data/predict-zero.json)
printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n' \
  "'$body'" > "$work/p.lua"
server=""
trap 'stop_server; rm -rf "$work"' EXIT

valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" --instr-atstart=no \
  "$BIN" --host 127.0.0.1 --port "$PORT" --device cpu --grpc-port 0 --workers 1 "$@" 2>/dev/null &
server=$!
wait_ready "http://127.0.0.1:$PORT" 120 kill -0 "$server"
wrk -t1 -c"$CONNECTIONS" -d2s -s "$work/p.lua" "http://127.0.0.1:$PORT/v1/predict" >/dev/null
callgrind_control -i on "$server" >/dev/null 2>&1
report=$(wrk -t1 -c"$CONNECTIONS" -d8s -s "$work/p.lua" "http://127.0.0.1:$PORT/v1/predict")
callgrind_control -i off "$server" >/dev/null 2>&1
callgrind_control -d "$server" >/dev/null 2>&1
sleep 1
stop_server
requests=$(awk '/requests in/ {print $1}' <<<"$report")
instructions=$(cat "$work"/cg.* | awk '/^(summary|totals):/ {s += $2} END {print s}')
echo "$BIN $*: $requests requests, $((instructions / requests)) instructions per request"
