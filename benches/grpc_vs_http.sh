#!/usr/bin/env bash
# KServe V2 over REST (binary tensors) vs over gRPC, one release server, Triton's perf_analyzer
# 2.41 at batch 1, c=1/16/64, the two protocols interleaved, 3 rounds of 3 s windows. Beside
# each point, the server's own CPU time per inference (its utime + stime over the run, divided by
# the inferences its statistics counted), which the client's cost does not blur.
#   bash benches/grpc_vs_http.sh     (after `bash benches/perf_analyzer.sh check ...` installed
#                                     perf_analyzer, and a release build with flex,mimalloc)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/dist/ember-serve
$BIN --host 127.0.0.1 --port 18181 --grpc-port 18182 --device cpu --log-level warn &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true' EXIT
# shellcheck source=.ci/lib.sh
source .ci/lib.sh
wait_ready http://127.0.0.1:18181 60 kill -0 $pid
PA=target/perf_analyzer/bin/perf_analyzer
# Server CPU time in clock ticks, and the inferences it has answered.
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
inferences() {
  curl -fsS http://127.0.0.1:18181/v2/models/digits-cnn/stats |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["model_stats"][0]["inference_count"])'
}
HZ=$(getconf CLK_TCK)
pa() { # protocol url c
  local csv t0 n0 cpu
  csv=$(mktemp)
  t0=$(ticks)
  n0=$(inferences)
  LD_LIBRARY_PATH=target/perf_analyzer/lib $PA -u "$2" -i "$1" -m digits-cnn \
    --input-data target/perf_analyzer/digits.json --concurrency-range "$3" \
    --measurement-interval 3000 -f "$csv" >/dev/null 2>&1 || {
    # On a busy machine perf_analyzer may find no stable window: say so, and go on.
    echo "$1 c=$3: perf_analyzer failed (no stable measurement?)"
    rm -f "$csv"
    return 0
  }
  cpu=$(echo "$(ticks) $t0 $(inferences) $n0 $HZ" | awk '{printf "%.1f", ($1 - $2) / $5 * 1e6 / ($3 - $4)}')
  awk -F, 'NR==2 {printf "%s c=%s: %s infer/s, p50 %.2f ms, p99 %.2f ms, server CPU %s µs/inference\n", P, $1, $2, $(NF-3)/1000, $NF/1000, CPU}' P="$1" CPU="$cpu" "$csv"
  rm -f "$csv"
}
for round in 1 2 3; do
  for c in 1 16 64; do
    echo -n "round $round "; pa http 127.0.0.1:18181 $c
    echo -n "round $round "; pa grpc 127.0.0.1:18182 $c
  done
done
