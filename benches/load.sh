#!/usr/bin/env bash
# Load test on loopback: release ember-serve with batching on (the defaults), on with a 1 ms
# batch window, and off, plus the bare-axum ceiling (src/bin/ceiling.rs), at concurrency 1, 16,
# 64 and 256, single-input predictions.
# Also measures cold start (spawn → /health/ready 200) and peak RSS during the c=256 run.
#
#   bash benches/load.sh              # DURATION=10s per point by default
#   DURATION=5s bash benches/load.sh
#   FEATURES=ndarray bash benches/load.sh   # another build (default: flex,mimalloc, as the images)
#
# Needs wrk (apt-get install wrk) and, for the plot, gnuplot (apt-get install gnuplot-nox).
# Writes benches/results/load.csv, load.json and load.png; prints a table. Targets 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
FEATURES=${FEATURES:-flex,mimalloc}
OUT=benches/results
PORT=18180
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }

cargo build --release --locked --features "$FEATURES" --bin ember-serve --bin ceiling >&2
BIN=target/release

body=$(python3 -c 'import json; print(json.dumps({"inputs": [[0,0,5,13,9,1,0,0,0,0,13,15,10,15,5,0,0,3,15,2,0,11,8,0,0,4,12,0,0,8,8,0,0,5,8,0,0,9,8,0,0,4,11,0,1,12,7,0,0,2,14,5,10,12,0,0,0,0,6,13,10,0,0,0]]}))')
lua=$(mktemp --suffix=.lua)
cat > "$lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
LUA

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
wait_ready() {
  for _ in $(seq 1 2000); do
    curl -fs -o /dev/null "http://127.0.0.1:$PORT/health/ready" && return 0
    sleep 0.005
  done
  return 1
}
to_ms() { # wrk latency like 812.00us, 1.20ms, 2.01s
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n *= 1; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}

server=""
stop() {
  if [ -n "$server" ]; then
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  server=""
}
trap 'stop; rm -f "$lua"' EXIT

start() { # mode
  case "$1" in
    batching-on)  "$BIN/ember-serve" --host 127.0.0.1 --port $PORT --device cpu --log-level warn & ;;
    window-1ms)   "$BIN/ember-serve" --host 127.0.0.1 --port $PORT --device cpu --log-level warn --batch-wait 1ms & ;;
    batching-off) "$BIN/ember-serve" --host 127.0.0.1 --port $PORT --device cpu --log-level warn --max-batch 1 --batch-wait 0ms & ;;
    ceiling)      "$BIN/ceiling" "127.0.0.1:$PORT" 2>/dev/null & ;;
  esac
  server=$!
  if [ "$1" = ceiling ]; then sleep 0.3; else wait_ready; fi
}

echo "mode,concurrency,requests_per_s,p50_ms,p99_ms,errors" > "$OUT/load.csv"
cold_start_ms="" peak_rss_kib="" backend=""
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
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$report")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$report")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$report")")
    errors=$(awk '/Non-2xx or 3xx responses:/ {e += $NF}
                  /Socket errors:/ {for (i = 3; i <= NF; i++) {gsub(",", "", $i); if ($i ~ /^[0-9]+$/) e += $i}}
                  END {print e + 0}' <<<"$report")
    echo "$mode,$c,$rps,$p50,$p99,$errors" >> "$OUT/load.csv"
    if [ "$mode" = batching-on ] && [ "$c" = 256 ]; then
      peak_rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
    fi
  done
  stop
done

python3 - "$OUT" "$cold_start_ms" "$peak_rss_kib" "$DURATION" "$FEATURES" "$backend" <<'PY'
import csv, json, os, platform, sys
out, cold, rss, duration, features, backend = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
rows = list(csv.DictReader(open(f"{out}/load.csv")))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
summary = {
    "machine": {"cores": os.cpu_count(), "cpu": cpu, "kernel": platform.release()},
    "duration_per_point": duration,
    "cargo_features": features,
    "backend": backend,
    "cold_start_ms": cold,
    "peak_rss_mib_c256": round(rss / 1024, 1),
    "points": rows,
}
json.dump(summary, open(f"{out}/load.json", "w"), indent=2)
by = {(r["mode"], r["concurrency"]): r for r in rows}
print(f"\n{'mode':<14}{'c':>5}{'req/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
for r in rows:
    print(f"{r['mode']:<14}{r['concurrency']:>5}{float(r['requests_per_s']):>11.0f}{float(r['p50_ms']):>9.3f}{float(r['p99_ms']):>9.3f}{r['errors']:>8}")
on, off, ceil = (float(by[(m, "64")]["requests_per_s"]) for m in ("batching-on", "batching-off", "ceiling"))
print(f"\nc=64: batching on/off = {on / off:.2f}x (target >= 2x); on/ceiling = {on / ceil:.2f} (target >= 0.8)")
print(f"p99 at c=1 with batching: {float(by[('batching-on', '1')]['p99_ms']):.3f} ms (target <= 1 ms)")
print(f"cold start: {cold} ms (target <= 100 ms); peak RSS at c=256: {rss / 1024:.1f} MiB (target <= 64 MiB)")
print(f"machine: {os.cpu_count()} cores, {cpu}; wrk and the server share them; backend {backend} (features {features})")
PY

if command -v gnuplot >/dev/null; then
  gnuplot <<GP
set terminal pngcairo size 900,540 noenhanced
set output "$OUT/load.png"
set datafile separator ","
set title "ember-serve throughput vs concurrency (single-input /v1/predict, features $FEATURES, loopback, $(nproc) cores)"
set xlabel "concurrent connections"
set ylabel "requests/s"
set logscale x 2
set key top left
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
