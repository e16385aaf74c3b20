#!/usr/bin/env bash
# Triton's perf_analyzer, unchanged, against ember-serve's KServe V2 surface: it reads the model
# metadata and configuration, sends binary tensors, and reads the statistics extension to split
# server latency into queue and compute time.
#
#   bash benches/perf_analyzer.sh check HOST:PORT    # what .ci/test.sh runs: c=1 and c=16, 2 s windows
#   bash benches/perf_analyzer.sh sweep [HOST:PORT]  # c=1,4,16,64 x batch 1 and 8 (~3 min)
#   PROTOCOL=grpc bash benches/perf_analyzer.sh ...  # the same over gRPC (HOST:PORT: the gRPC port)
#   MODEL=breast-cancer bash benches/perf_analyzer.sh ...  # a model of the repository (weights/)
#
# `sweep` without an address builds and starts a release server like benches/load.sh (features
# flex,mimalloc, as the images) on 127.0.0.1:18181 (gRPC 18182) and writes
# benches/results/perf_analyzer.csv (perf_analyzer-grpc.csv over gRPC).
# Inputs are real digits from tests/data/digits.csv.gz (perf_analyzer's default random data is
# outside the model's 0..=16 pixel range, and the server rightly refuses it); a repository
# model's are the held-out rows of its weights/<name>/examples.json.
#
# perf_analyzer is in no crate or Debian package: the manylinux wheel of tritonclient 2.41.0 is
# the last that ships the binary. It links libb64 (Debian libb64-0d) and libcudart.so.12 (PyPI
# nvidia-cuda-runtime-cu12; HTTP mode never touches a GPU). Installed under target/perf_analyzer/,
# x86-64 Linux only. Targets loopback addresses only.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=.ci/lib.sh
source .ci/lib.sh

TRITONCLIENT=2.41.0
CUDART=12.3.101
HOME_DIR=${PA_HOME:-target/perf_analyzer}
# PROTOCOL=grpc speaks KServe V2 over gRPC (HOST:PORT is then the gRPC port).
PROTOCOL=${PROTOCOL:-http}
MODEL=${MODEL:-digits-cnn}
PA=$HOME_DIR/bin/perf_analyzer
OUT=benches/results

install() {
  [ "$(uname -m)" = x86_64 ] || { echo "perf_analyzer: x86-64 only (the wheel's binary)" >&2; exit 1; }
  if ! ldconfig -p | grep -q 'libb64\.so\.0d'; then
    if [ "$(id -u)" = 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libb64-0d >/dev/null \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libb64-0d >/dev/null; }
    else
      echo "perf_analyzer needs libb64-0d: apt-get install libb64-0d (as root)" >&2
      exit 1
    fi
  fi
  if [ ! -x "$PA" ]; then
    local wheels
    wheels=$(mktemp -d)
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
      --platform manylinux1_x86_64 --python-version 3.11 -d "$wheels" \
      "tritonclient==$TRITONCLIENT" "nvidia-cuda-runtime-cu12==$CUDART"
    mkdir -p "$HOME_DIR/bin" "$HOME_DIR/lib"
    python3 - "$wheels" "$HOME_DIR" <<'PY'
import pathlib, sys, zipfile
wheels, home = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for wheel in wheels.glob("*.whl"):
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name.endswith("/data/bin/perf_analyzer"):
                (home / "bin" / "perf_analyzer").write_bytes(z.read(name))
            elif name.endswith("/libcudart.so.12"):
                (home / "lib" / "libcudart.so.12").write_bytes(z.read(name))
PY
    chmod +x "$PA"
    rm -rf "$wheels"
  fi
  # perf_analyzer's --input-data format: one {"input": [64 values]} per input, batch dim left out.
  python3 - "$HOME_DIR/digits.json" <<'PY'
import gzip, json, sys
with gzip.open("tests/data/digits.csv.gz", "rt") as f:
    rows = [line.strip().split(",") for line in f if line.strip()][:256]
json.dump({"data": [{"input": [float(v) for v in r[:64]]} for r in rows]}, open(sys.argv[1], "w"))
PY
  # A repository model's: one entry per example row, every input by name, flattened row-major.
  for examples in weights/*/examples.json; do
    python3 - "$examples" "$HOME_DIR/$(basename "$(dirname "$examples")").json" <<'PY'
import json, sys
def flat(v):
    return [x for item in v for x in flat(item)] if isinstance(v, list) else [v]
inputs = json.load(open(sys.argv[1]))["inputs"]
rows = len(next(iter(inputs.values())))
json.dump({"data": [{k: flat(v[i]) for k, v in inputs.items()} for i in range(rows)]}, open(sys.argv[2], "w"))
PY
  done
}

input_data() {
  if [ "$MODEL" = digits-cnn ]; then echo "$HOME_DIR/digits.json"; else echo "$HOME_DIR/$MODEL.json"; fi
}

run_pa() { # URL, then perf_analyzer options
  local url=$1
  shift
  LD_LIBRARY_PATH="$HOME_DIR/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$PA" -u "$url" -i "$PROTOCOL" \
    -m "$MODEL" --input-data "$(input_data)" "$@"
}

check() { # URL
  local url=$1 log
  log=$(mktemp)
  # A functional check on a debug build sharing the CI machine: stability within 50 % is enough
  # to show the measurement loop works; the numbers are not kept.
  if ! run_pa "$url" --concurrency-range 1:16:15 --measurement-interval 2000 \
    --stability-percentage 50 --max-trials 10 >"$log" 2>&1; then
    cat "$log"
    echo "perf_analyzer failed against $url" >&2
    exit 1
  fi
  cat "$log"
  # Both concurrencies measured, with the server-side breakdown read from /stats.
  for c in 1 16; do
    grep -q "^Concurrency: $c, throughput: " "$log" || { echo "no result for concurrency $c" >&2; exit 1; }
  done
  [ "$(grep -c 'compute infer' "$log")" -eq 2 ] || { echo "no server-side breakdown" >&2; exit 1; }
  if grep -qiE 'error|failed' "$log"; then
    echo "perf_analyzer reported errors" >&2
    exit 1
  fi
  rm -f "$log"
  echo "perf_analyzer $TRITONCLIENT ($PROTOCOL, $MODEL): OK against $url (c=1 and c=16, server queue/compute breakdown present)"
}

sweep() { # [URL]
  local url=${1:-} server="" csv
  if [ -z "$url" ]; then
    cargo build --profile dist --locked --features flex,mimalloc --bin ember-serve >&2
    target/dist/ember-serve --host 127.0.0.1 --port 18181 --grpc-port 18182 --device cpu \
      --log-level warn &
    server=$!
    trap 'kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
    wait_ready "http://127.0.0.1:18181" 60 kill -0 "$server"
    url=127.0.0.1:18181
    if [ "$PROTOCOL" = grpc ]; then url=127.0.0.1:18182; fi
  fi
  mkdir -p "$OUT"
  csv=$OUT/perf_analyzer.csv
  if [ "$PROTOCOL" = grpc ]; then csv=$OUT/perf_analyzer-grpc.csv; fi
  : >"$csv"
  for batch in 1 8; do
    local part
    part=$(mktemp)
    for c in 1 4 16 64; do
      run_pa "$url" -b "$batch" --concurrency-range "$c" --measurement-interval 3000 -f "$part.$c" >&2
      if [ ! -s "$csv" ]; then sed -n '1s/^/Batch,/p' "$part.$c" >"$csv"; fi
      sed -n "2,\$s/^/$batch,/p" "$part.$c" >>"$csv"
      rm -f "$part.$c"
    done
    rm -f "$part"
  done
  echo "wrote $csv:"
  column -s, -t <"$csv" | cut -c1-200
}

case "${1:-}" in
  check)
    [ $# -eq 2 ] || { echo "usage: $0 check HOST:PORT" >&2; exit 2; }
    install
    check "$2"
    ;;
  sweep)
    install
    sweep "${2:-}"
    ;;
  *)
    echo "usage: $0 check HOST:PORT | sweep [HOST:PORT]" >&2
    exit 2
    ;;
esac
