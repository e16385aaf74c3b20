#!/usr/bin/env bash
# ember-serve against MLServer 1.7.1 (Seldon's Python KServe V2 server, with ONNX Runtime) on the
# same model.onnx and the same request: a V2 JSON infer of one held-out row, wrk -c64, in paired
# rounds (ember-serve then MLServer, each after 1 s of warm-up), both servers up for the whole run.
# Before measuring it checks that both answer that row alike (every output within 1e-5).
#
#   BIN=target/dist/ember-serve bash benches/vs_mlserver.sh
#   MODEL=diabetes ROUNDS=5 DURATION=10s CONNECTIONS=64 (defaults: breast-cancer, 5, 10s, 64)
#   MLSERVER_WORKERS=N: MLServer's parallel_workers (its default, 1: inference in a worker
#   process; 0: in the server's own process)
#
# Installs MLServer 1.7.1 and onnxruntime into a virtual environment under target/mlserver/ on
# first use (PyPI). Needs wrk, curl and python3. Writes benches/results/vs_mlserver.csv.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=.ci/lib.sh
source .ci/lib.sh
BIN=${BIN:-target/dist/ember-serve}
MODEL=${MODEL:-breast-cancer}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
WORKERS=${MLSERVER_WORKERS:-1}
HOME_DIR=target/mlserver
OUT=benches/results
EMBER_PORT=18301 MLSERVER_PORT=18302
mkdir -p "$OUT" "$HOME_DIR"
[ -x "$BIN" ] || { echo "no $BIN: cargo build --profile dist --no-default-features --features flex,mimalloc" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }

if [ ! -x "$HOME_DIR/venv/bin/mlserver" ]; then
  python3 -m venv "$HOME_DIR/venv"
  # uvloop 0.22 removed the implicit event loop MLServer 1.7.1's worker processes ask for at start.
  "$HOME_DIR/venv/bin/pip" install -q mlserver==1.7.1 "uvloop<0.22" onnxruntime numpy
fi

# The MLServer repository: one model directory with the same ONNX file and the runtime beside it.
repo=$(mktemp -d)
lua=$(mktemp --suffix=.lua)
ember="" mlserver=""
stop() { for pid in $ember $mlserver; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done; rm -rf "$repo" "$lua"; }
trap stop EXIT
mkdir "$repo/$MODEL"
cp "weights/$MODEL/model.onnx" benches/mlserver/onnx_runtime.py "$repo/$MODEL/"
cat >"$repo/settings.json" <<JSON
{"http_port": $MLSERVER_PORT, "grpc_port": 18303, "metrics_port": 18304, "parallel_workers": $WORKERS}
JSON
cat >"$repo/$MODEL/model-settings.json" <<JSON
{"name": "$MODEL", "implementation": "onnx_runtime.OnnxModel", "parameters": {"uri": "$repo/$MODEL/model.onnx"}}
JSON

# The request: the first held-out row of each input, as a client's JSON encoder writes it.
body=$(python3 - "weights/$MODEL" <<'PY'
import json, sys
config = json.load(open(f"{sys.argv[1]}/config.json"))
rows = json.load(open(f"{sys.argv[1]}/examples.json"))["inputs"]
inputs = [{"name": i["name"], "datatype": "FP32", "shape": [1, len(rows[i["name"]][0])],
           "data": rows[i["name"]][0]} for i in config["inputs"]]
print(json.dumps({"inputs": inputs}, separators=(",", ":")))
PY
)
printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n' "'$body'" >"$lua"

"$BIN" --host 127.0.0.1 --port "$EMBER_PORT" --grpc-port 0 --device cpu 2>/dev/null &
ember=$!
mlserver_bin=$(realpath "$HOME_DIR/venv/bin/mlserver")
(cd "$repo" && PYTHONPATH="$repo/$MODEL" exec "$mlserver_bin" start . >"$OLDPWD/$HOME_DIR/mlserver.log" 2>&1) &
mlserver=$!
wait_ready "http://127.0.0.1:$EMBER_PORT/v2" 30 kill -0 "$ember"
wait_ready "http://127.0.0.1:$MLSERVER_PORT/v2" 120 kill -0 "$mlserver"

url() { echo "http://127.0.0.1:$1/v2/models/$MODEL/infer"; }
python3 - "$(url "$EMBER_PORT")" "$(url "$MLSERVER_PORT")" "$body" <<'PY'
import json, sys, urllib.request
def infer(url):
    request = urllib.request.Request(url, sys.argv[3].encode(), {"Content-Type": "application/json"})
    return {o["name"]: o["data"] for o in json.load(urllib.request.urlopen(request))["outputs"]}
ember, mlserver = infer(sys.argv[1]), infer(sys.argv[2])
assert ember.keys() == mlserver.keys(), (ember.keys(), mlserver.keys())
for name in ember:
    worst = max(abs(a - b) for a, b in zip(ember[name], mlserver[name]))
    assert len(ember[name]) == len(mlserver[name]) and worst <= 1e-5, (name, ember[name], mlserver[name])
    print(f"{name}: both answer {ember[name]} (largest difference {worst:.1e})", file=sys.stderr)
PY

measure() { # PORT -> requests/s,p50,p99,errors
  wrk -t2 -c"$CONNECTIONS" -d1s -s "$lua" "$(url "$1")" >/dev/null
  wrk_summary "$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$lua" "$(url "$1")")"
}
echo "round,server,requests_per_s,p50_ms,p99_ms,errors" >"$OUT/vs_mlserver.csv"
for round in $(seq 1 "$ROUNDS"); do
  for side in ember-serve:$EMBER_PORT mlserver:$MLSERVER_PORT; do
    line=$(measure "${side#*:}")
    echo "$round,${side%%:*},$line" >>"$OUT/vs_mlserver.csv"
    echo "round $round ${side%%:*}: $line" >&2
  done
done

python3 - "$OUT/vs_mlserver.csv" "$MODEL" "$CONNECTIONS" "$WORKERS" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
def side(name, column):
    return [float(r[column]) for r in rows if r["server"] == name]
ember, ml = side("ember-serve", "requests_per_s"), side("mlserver", "requests_per_s")
ratios = [e / m for e, m in zip(ember, ml)]
print(f"{sys.argv[2]}, c={sys.argv[3]}, MLServer parallel_workers={sys.argv[4]}, {len(rows) // 2} rounds")
print(f"ember-serve: median {statistics.median(ember):.0f} req/s, p99 {statistics.median(side('ember-serve', 'p99_ms')):.2f} ms")
print(f"MLServer:    median {statistics.median(ml):.0f} req/s, p99 {statistics.median(side('mlserver', 'p99_ms')):.2f} ms")
print(f"ratio per round: {', '.join(f'{r:.1f}' for r in ratios)}; median {statistics.median(ratios):.1f}x")
errors = sum(int(r["errors"]) for r in rows)
if errors:
    sys.exit(f"{errors} failed requests: the figures above are not comparable")
PY
