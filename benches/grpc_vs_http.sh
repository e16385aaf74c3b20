#!/usr/bin/env bash
# KServe V2 over REST (binary tensors) vs over gRPC, one release server, Triton's perf_analyzer
# 2.41 at batch 1, c=1/16/64, the two protocols interleaved, 3 rounds of 3 s windows.
#   bash benches/grpc_vs_http.sh     (after `bash benches/perf_analyzer.sh check ...` installed
#                                     perf_analyzer, and a release build with flex,mimalloc)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/ember-serve
$BIN --host 127.0.0.1 --port 18181 --grpc-port 18182 --device cpu --log-level warn &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true' EXIT
# shellcheck source=.ci/lib.sh
source .ci/lib.sh
wait_ready http://127.0.0.1:18181 60 kill -0 $pid
PA=target/perf_analyzer/bin/perf_analyzer
pa() { # protocol url c
  local csv
  csv=$(mktemp)
  LD_LIBRARY_PATH=target/perf_analyzer/lib $PA -u "$2" -i "$1" -m digits-cnn \
    --input-data target/perf_analyzer/digits.json --concurrency-range "$3" \
    --measurement-interval 3000 -f "$csv" >/dev/null 2>&1
  awk -F, 'NR==2 {printf "%s c=%s: %s infer/s, p50 %.2f ms, p99 %.2f ms\n", P, $1, $2, $(NF-3)/1000, $NF/1000}' P="$1" "$csv"
  rm -f "$csv"
}
for round in 1 2 3; do
  for c in 1 16 64; do
    echo -n "round $round "; pa http 127.0.0.1:18181 $c
    echo -n "round $round "; pa grpc 127.0.0.1:18182 $c
  done
done
