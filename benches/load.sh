#!/usr/bin/env bash
# Load test on loopback: release ember-serve with batching on (the defaults), on with a 1 ms
# batch window, and off, plus the bare-axum ceiling (src/bin/ceiling.rs), at concurrency 1, 16,
# 64 and 256, single-input predictions.
# Also measures cold start (spawn → /health/ready 200) and peak RSS during the c=256 run.
#
# Shared or noisy machines swing single points by up to 30 %, so the whole sweep runs ROUNDS
# times with the modes interleaved (every mode sees every noisy spell alike) and the tables report
# the median of the rounds per point; peak RSS is the largest of the rounds.
#
#   bash benches/load.sh              # ROUNDS=3, DURATION=5s per point: about 5 minutes
#   ROUNDS=1 DURATION=10s bash benches/load.sh
#   FEATURES=ndarray bash benches/load.sh   # another build (default: flex,mimalloc, as the images)
#
# Needs wrk (apt-get install wrk) and, for the plot, gnuplot (apt-get install gnuplot-nox).
# Writes benches/results/load.csv (medians), load-rounds.csv (every round), load.json and
# load.png; prints a table. Targets 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=.ci/lib.sh
source .ci/lib.sh
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-3}
FEATURES=${FEATURES:-flex,mimalloc}
OUT=benches/results
PORT=18180
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }

cargo build --profile dist --locked --features "$FEATURES" --bin ember-serve --bin ceiling >&2
BIN=target/dist

body=$(tr -d '\n' <tests/data/predict-zero.json)
lua=$(mktemp --suffix=.lua)
cat > "$lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
LUA

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
server=""
trap 'stop_server; rm -f "$lua"' EXIT

start() { # mode
  case "$1" in
    batching-on)  "$BIN/ember-serve" --host 127.0.0.1 --port $PORT --device cpu --log-level warn --grpc-port 0 & ;;
    window-1ms)   "$BIN/ember-serve" --host 127.0.0.1 --port $PORT --device cpu --log-level warn --grpc-port 0 --batch-wait 1ms & ;;
    batching-off) "$BIN/ember-serve" --host 127.0.0.1 --port $PORT --device cpu --log-level warn --grpc-port 0 --max-batch 1 --batch-wait 0ms & ;;
    ceiling)      "$BIN/ceiling" "127.0.0.1:$PORT" 2>/dev/null & ;;
  esac
  server=$!
  if [ "$1" = ceiling ]; then sleep 0.3; else wait_ready "http://127.0.0.1:$PORT" 20 kill -0 "$server"; fi
}

echo "round,mode,concurrency,requests_per_s,p50_ms,p99_ms,errors" > "$OUT/load-rounds.csv"
echo "round,cold_start_ms,peak_rss_kib" > "$OUT/load-start.csv"
backend=""
for round in $(seq 1 "$ROUNDS"); do
  cold_start_ms="" peak_rss_kib=""
  for mode in batching-on window-1ms batching-off ceiling; do
    t0=$(now_ms)
    start "$mode"
    if [ "$mode" = batching-on ]; then
      cold_start_ms=$(( $(now_ms) - t0 ))
      backend=$(curl -fs "http://127.0.0.1:$PORT/v1/models" | python3 -c 'import json,sys; print(json.load(sys.stdin)["models"][0]["backend"])')
    fi
    wrk -t1 -c16 -d2s -s "$lua" "http://127.0.0.1:$PORT/v1/predict" >/dev/null  # warm-up
    for c in 1 16 64 256; do
      threads=$(( c < 2 ? 1 : 2 ))
      report=$(wrk -t"$threads" -c"$c" -d"$DURATION" --latency -s "$lua" "http://127.0.0.1:$PORT/v1/predict")
      IFS=, read -r rps p50 p99 errors < <(wrk_summary "$report")
      echo "$round,$mode,$c,$rps,$p50,$p99,$errors" >> "$OUT/load-rounds.csv"
      if [ "$mode" = batching-on ] && [ "$c" = 256 ]; then
        peak_rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
      fi
    done
    stop_server
  done
  echo "$round,$cold_start_ms,$peak_rss_kib" >> "$OUT/load-start.csv"
  echo "round $round of $ROUNDS done" >&2
done

python3 - "$OUT" "$DURATION" "$ROUNDS" "$FEATURES" "$backend" <<'PY'
import csv, json, os, platform, statistics, sys
out, duration, rounds, features, backend = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
raw = list(csv.DictReader(open(f"{out}/load-rounds.csv")))
starts = list(csv.DictReader(open(f"{out}/load-start.csv")))
os.remove(f"{out}/load-start.csv")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
rows = []  # one per (mode, concurrency), in the order measured: medians over the rounds
for key in dict.fromkeys((r["mode"], r["concurrency"]) for r in raw):
    pts = [r for r in raw if (r["mode"], r["concurrency"]) == key]
    med = lambda f: statistics.median(float(p[f]) for p in pts)
    rows.append({"mode": key[0], "concurrency": key[1],
                 "requests_per_s": f"{med('requests_per_s'):.2f}", "p50_ms": f"{med('p50_ms'):.3f}",
                 "p99_ms": f"{med('p99_ms'):.3f}", "errors": str(sum(int(p["errors"]) for p in pts))})
with open(f"{out}/load.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
cold = statistics.median(int(s["cold_start_ms"]) for s in starts)
rss = max(int(s["peak_rss_kib"]) for s in starts)
summary = {
    "machine": {"cores": os.cpu_count(), "cpu": cpu, "kernel": platform.release()},
    "duration_per_point": duration,
    "rounds": rounds,
    "aggregate": "median of the rounds per point; peak RSS is the largest round",
    "cargo_features": features,
    "backend": backend,
    "cold_start_ms": cold,
    "cold_start_ms_rounds": [int(s["cold_start_ms"]) for s in starts],
    "peak_rss_mib_c256": round(rss / 1024, 1),
    "points": rows,
}
json.dump(summary, open(f"{out}/load.json", "w"), indent=2)
by = {(r["mode"], r["concurrency"]): r for r in rows}
print(f"\nmedian of {rounds} round(s), {duration} per point")
print(f"{'mode':<14}{'c':>5}{'req/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
for r in rows:
    print(f"{r['mode']:<14}{r['concurrency']:>5}{float(r['requests_per_s']):>11.0f}{float(r['p50_ms']):>9.3f}{float(r['p99_ms']):>9.3f}{r['errors']:>8}")
on, off, ceil = (float(by[(m, "64")]["requests_per_s"]) for m in ("batching-on", "batching-off", "ceiling"))
print(f"\nc=64: batching on/off = {on / off:.2f}x (target >= 2x); on/ceiling = {on / ceil:.2f} (target >= 0.8)")
print(f"p99 at c=1 with batching: {float(by[('batching-on', '1')]['p99_ms']):.3f} ms (target <= 1 ms)")
print(f"cold start: {cold:g} ms (target <= 100 ms); peak RSS at c=256: {rss / 1024:.1f} MiB (target <= 64 MiB)")
print(f"machine: {os.cpu_count()} cores, {cpu}; wrk and the server share them; backend {backend} (features {features})")
PY

if command -v gnuplot >/dev/null; then
  gnuplot <<GP
set terminal pngcairo size 900,540 noenhanced
set output "$OUT/load.png"
set datafile separator ","
set title "ember-serve single-input /v1/predict on loopback: $FEATURES, $(nproc) cores, median of $ROUNDS"
set xlabel "concurrent connections"
set ylabel "requests/s"
set logscale x 2
set key bottom right
set grid
plot "< grep '^batching-on,' $OUT/load.csv" using 2:3 with linespoints lw 2 title "batching on (defaults: no idle wait)", \
     "< grep '^window-1ms,' $OUT/load.csv" using 2:3 with linespoints lw 2 title "batching on, --batch-wait 1ms", \
     "< grep '^batching-off,' $OUT/load.csv" using 2:3 with linespoints lw 2 title "batching off (--max-batch 1)", \
     "< grep '^ceiling,' $OUT/load.csv" using 2:3 with linespoints lw 2 dt 2 title "bare axum ceiling"
GP
  echo "plot: $OUT/load.png"
else
  echo "gnuplot not found: no plot (apt-get install gnuplot-nox)"
fi
