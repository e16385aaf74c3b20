#!/usr/bin/env bash
# What the production switches cost: single-input POST /v1/predict, wrk -t2 -c64 after 1 s of
# warm-up, three servers interleaved round by round (every mode sees every noisy spell alike):
#   base  a release binary built before the switches existed (BASE_BIN)
#   off   this tree's release binary with its defaults (request ids on, every switch off)
#   on    the same binary with an API key (sent by wrk), and every request traced, exported over
#         OTLP/HTTP to a local sink that answers 200 (a stand-in collector; it decodes nothing)
#   on-1% the same, keeping 1 % of traces (OTEL_TRACES_SAMPLER=parentbased_traceidratio)
# All at the default log level, as users run it.
#
#   git worktree add /tmp/base <commit-before>
#   CARGO_TARGET_DIR=target/old cargo build --profile dist --locked --features flex,mimalloc \
#     --bin ember-serve --manifest-path /tmp/base/Cargo.toml
#   BASE_BIN=target/old/dist/ember-serve bash benches/switches.sh    # ROUNDS=5, DURATION=5s
#   NEW_BIN=path/to/ember-serve ...                                      # skip building this tree
#   PIN=1 ...    the server on CPU 0, wrk on CPU 1 (taskset): steadier on a small shared VM
#
# Needs wrk and python3. Writes benches/results/switches.csv (every round); prints medians.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=.ci/lib.sh
source .ci/lib.sh
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-5}
FEATURES=${FEATURES:-flex,mimalloc}
BASE_BIN=${BASE_BIN:?set BASE_BIN to a release binary built before the switches}
OUT=benches/results
PORT=18190
SINK_PORT=18191
KEY=bench-key-0123456789abcdef
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }

# NEW_BIN: an already built binary of this tree (else built here).
if [ -z "${NEW_BIN:-}" ]; then
  cargo build --profile dist --locked --features "$FEATURES" --bin ember-serve >&2
  NEW_BIN=target/dist/ember-serve
fi

body=$(tr -d '\n' <tests/data/predict-zero.json)
plain=$(mktemp --suffix=.lua)
keyed=$(mktemp --suffix=.lua)
cat > "$plain" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
LUA
{ cat "$plain"; echo "wrk.headers[\"Authorization\"] = \"Bearer $KEY\""; } > "$keyed"

# The stand-in collector: accepts OTLP/HTTP posts and answers 200 with an empty body.
python3 - "$SINK_PORT" <<'PY' &
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Sink(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
PY
sink=$!
server=""
trap 'stop_server; kill "$sink" 2>/dev/null; rm -f "$plain" "$keyed"' EXIT

common=(--host 127.0.0.1 --port "$PORT" --device cpu --grpc-port 0)
server_cpu=() wrk_cpu=()
if [ -n "${PIN:-}" ]; then server_cpu=(taskset -c 0) wrk_cpu=(taskset -c 1); fi
start() { # mode
  case "$1" in
    base) "${server_cpu[@]}" "$BASE_BIN" "${common[@]}" & ;;
    off)  "${server_cpu[@]}" "$NEW_BIN" "${common[@]}" & ;;
    on)   "${server_cpu[@]}" "$NEW_BIN" "${common[@]}" --api-key "$KEY" --otlp-endpoint "http://127.0.0.1:$SINK_PORT" & ;;
    on-1%) OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.01 \
          "${server_cpu[@]}" "$NEW_BIN" "${common[@]}" --api-key "$KEY" --otlp-endpoint "http://127.0.0.1:$SINK_PORT" & ;;
  esac
  server=$!
  wait_ready "http://127.0.0.1:$PORT" 20 kill -0 "$server"
}

echo "round,mode,requests_per_s,p99_ms,errors" > "$OUT/switches.csv"
for round in $(seq 1 "$ROUNDS"); do
  for mode in base off on on-1%; do
    start "$mode" 2>/dev/null
    script=$plain
    [ "$mode" != base ] && [ "$mode" != off ] && script=$keyed
    "${wrk_cpu[@]}" wrk -t2 -c64 -d1s -s "$script" "http://127.0.0.1:$PORT/v1/predict" >/dev/null
    report=$("${wrk_cpu[@]}" wrk -t2 -c64 -d"$DURATION" --latency -s "$script" "http://127.0.0.1:$PORT/v1/predict")
    IFS=, read -r rps _ p99 errors < <(wrk_summary "$report")
    echo "$round,$mode,$rps,$p99,$errors" >> "$OUT/switches.csv"
    stop_server
  done
  echo "round $round of $ROUNDS done" >&2
done

python3 - "$OUT/switches.csv" "$DURATION" <<'PY'
import csv, os, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
pin = "server on CPU 0, wrk on CPU 1" if os.environ.get("PIN") else "wrk and server sharing them"
print(f"\nwrk -t2 -c64, {sys.argv[2]} per round, {os.cpu_count()} cores ({cpu}), {pin}")
print(f"{'mode':<6}{'median req/s':>14}{'p99 ms':>9}{'errors':>8}  rounds (req/s)")
base = None
for mode in ("base", "off", "on", "on-1%"):
    pts = [r for r in rows if r["mode"] == mode]
    rps = statistics.median(float(p["requests_per_s"]) for p in pts)
    p99 = statistics.median(float(p["p99_ms"]) for p in pts)
    errs = sum(int(p["errors"]) for p in pts)
    base = base or rps
    rounds = ", ".join(f"{float(p['requests_per_s']) / 1000:.1f}k" for p in pts)
    print(f"{mode:<6}{rps:>14.0f}{p99:>9.2f}{errs:>8}  {rounds}  ({rps / base - 1:+.1%} vs base)")
PY
