#!/usr/bin/env bash
# Two release binaries against each other on single-input POST /v1/predict, in pairs: each round
# runs A then B (wrk -t2 -c64 after 1 s of warm-up), so both see the same noisy spell, and the
# verdict is how many rounds B beat A, not two medians taken minutes apart.
#
#   A_BIN=target/old/dist/ember-serve B_BIN=target/dist/ember-serve bash benches/ab.sh
#   ROUNDS=8 DURATION=5s A_ARGS="--client-timeout 1h" B_ARGS=... (extra flags per side)
#   BODY=file.json: another /v1/predict body (default: one input, tests/data/predict-zero.json)
#   PIN=1: the server on CPU 0 and wrk on CPU 1 (taskset), so neither is scheduled onto the
#   other's core: steadier on a small shared VM, and what one core of the server does.
#
# Needs wrk and python3. Writes benches/results/ab.csv; prints every pair and the summary.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=.ci/lib.sh
source .ci/lib.sh
A_BIN=${A_BIN:?set A_BIN to a release binary}
B_BIN=${B_BIN:?set B_BIN to a release binary}
ROUNDS=${ROUNDS:-8}
DURATION=${DURATION:-5s}
OUT=benches/results
PORT=18192
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }

body=$(tr -d '\n' <"${BODY:-tests/data/predict-zero.json}")
lua=$(mktemp --suffix=.lua)
printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n' \
  "'$body'" > "$lua"
server=""
trap 'stop_server; rm -f "$lua"' EXIT

server_cpu=() wrk_cpu=()
if [ -n "${PIN:-}" ]; then server_cpu=(taskset -c 0) wrk_cpu=(taskset -c 1); fi

measure() { # BIN ARGS -> requests/s
  local bin=$1 args=$2
  # shellcheck disable=SC2086 # ARGS are flags, split on purpose
  "${server_cpu[@]}" "$bin" --host 127.0.0.1 --port "$PORT" --device cpu --grpc-port 0 $args 2>/dev/null &
  server=$!
  wait_ready "http://127.0.0.1:$PORT" 20 kill -0 "$server"
  "${wrk_cpu[@]}" wrk -t2 -c64 -d1s -s "$lua" "http://127.0.0.1:$PORT/v1/predict" >/dev/null
  "${wrk_cpu[@]}" wrk -t2 -c64 -d"$DURATION" -s "$lua" "http://127.0.0.1:$PORT/v1/predict" |
    awk '/^Requests\/sec:/ {print $2}'
  stop_server
}

echo "round,a_requests_per_s,b_requests_per_s" > "$OUT/ab.csv"
for round in $(seq 1 "$ROUNDS"); do
  a=$(measure "$A_BIN" "${A_ARGS:-}")
  b=$(measure "$B_BIN" "${B_ARGS:-}")
  echo "$round,$a,$b" >> "$OUT/ab.csv"
  echo "round $round: A $a, B $b req/s" >&2
done

python3 - "$OUT/ab.csv" "$DURATION" <<'PY'
import csv, os, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
a = [float(r["a_requests_per_s"]) for r in rows]
b = [float(r["b_requests_per_s"]) for r in rows]
ratios = [y / x for x, y in zip(a, b)]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
pin = "server on CPU 0, wrk on CPU 1" if os.environ.get("PIN") else "server and wrk sharing the cores"
print(f"\nwrk -t2 -c64, {sys.argv[2]} per run, {len(rows)} paired rounds, {os.cpu_count()} cores ({cpu}), {pin}")
print(f"A median {statistics.median(a):.0f} req/s, B median {statistics.median(b):.0f} req/s")
print(f"B/A per round: {', '.join(f'{r:.3f}' for r in ratios)}")
print(f"B/A median {statistics.median(ratios):.3f}; B higher in {sum(r > 1 for r in ratios)} of {len(rows)} rounds")
PY
