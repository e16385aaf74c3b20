#!/usr/bin/env bash
# The GPU against the CPU, one release binary on one machine: readiness (warm-up of every batch
# size), the first 10 s after readiness against the steady state and against a burst after 30 s
# idle (single inputs at c=64, which take the CPU lane by default, then 256-row bodies at c=16,
# the GPU's first traffic), single inputs at c=1/64/256, 64-, 256- and 1024-row JSON bodies and
# 1024- and 4096-row binary V2 tensors, on `--device gpu` with its defaults, on a few variants
# of them (the first 10 s, c=256 single inputs, 64-row JSON and 4096-row binary bodies), and on
# `--device cpu --max-batch 4096`. Also checks that GPU and CPU answers agree.
#
#   BIN=target/dist/ember-serve bash benches/gpu.sh
#
# BIN: built with `--no-default-features --features flex,wgpu,mimalloc` (as the GPU image is).
# DURATION=4s per point; VARIANTS: flag sets tried beside the GPU defaults, `;`-separated
# (default "--cpu-lane-below=0;--gpu-queues=2": everything on the GPU; two device queues);
# BASELINE_BIN: another build, run on the GPU (`gpu-baseline`: c=256 singles, 64-row JSON,
# 4096-row binary) and on its CPU backend (`cpu-baseline`), to tell a change's effect from the
# machine's noise; PROFILE=0 skips the kernel profile (a one-thread server under cubecl's
# profiler, 20 sequential 4096-row binary requests: each kernel's launches and time);
# SERVER_CPUS=0-11 WRK_CPUS=12-15 pin the server and wrk (taskset; empty: no pinning);
# IDLE=30: seconds idle before the after-idle burst; OUT=benches/results. Needs wrk, curl and
# python3, and a Vulkan driver the loader can open (`ember-serve --device gpu` refuses to start
# and says why otherwise). About 3 minutes.
# Writes $OUT/gpu.csv, $OUT/gpu-passes.csv (each point's forward passes by lane: how many, mean
# inputs, mean time), $OUT/gpu-threads.csv (each point's CPU time by group of server threads),
# $OUT/gpu-kernels.csv (the profile) and $OUT/gpu-*.log (each server's log); prints the tables.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=.ci/lib.sh
source .ci/lib.sh
BIN=${BIN:-target/dist/ember-serve}
DURATION=${DURATION:-4s}
VARIANTS=${VARIANTS---cpu-lane-below=0;--gpu-queues=2}
OUT=${OUT:-benches/results}
SERVER_CPUS=${SERVER_CPUS-0-11}
WRK_CPUS=${WRK_CPUS-12-15}
PORT=18190
URL=http://127.0.0.1:$PORT
mkdir -p "$OUT"
for tool in wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "$tool not found" >&2; exit 1; }
done

server_cpu=() wrk_cpu=()
if [ -n "$SERVER_CPUS" ]; then server_cpu=(taskset -c "$SERVER_CPUS"); fi
if [ -n "$WRK_CPUS" ]; then wrk_cpu=(taskset -c "$WRK_CPUS"); fi

work=$(mktemp -d)
server=""
trap 'stop_server; rm -rf "$work"' EXIT

# Request bodies: one digit from the test data, repeated; binary V2 bodies are a JSON header
# then the rows as little-endian FP32 (Triton's binary tensor extension).
python3 - "$work" tests/data/predict-zero.json <<'PY'
import json, struct, sys
work, sample = sys.argv[1], sys.argv[2]
digit = json.load(open(sample))["inputs"][0]
def lua(name, body, headers):
    open(f"{work}/{name}.body", "wb").write(body)
    lines = ['wrk.method = "POST"',
             f'local f = assert(io.open("{work}/{name}.body", "rb"))',
             'wrk.body = f:read("*a")', 'f:close()']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    open(f"{work}/{name}.lua", "w").write("\n".join(lines) + "\n")
for rows in (1, 64, 256, 1024):
    body = json.dumps({"inputs": [digit] * rows}, separators=(",", ":")).encode()
    lua(f"json{rows}", body, {"Content-Type": "application/json"})
for rows in (1024, 4096):
    raw = struct.pack(f"<{64 * rows}f", *(digit * rows))
    header = json.dumps({
        "inputs": [{"name": "input", "shape": [rows, 64], "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)}}],
        "outputs": [{"name": n, "parameters": {"binary_data": True}}
                    for n in ("probabilities", "label")],
    }, separators=(",", ":")).encode()
    lua(f"bin{rows}", header + raw, {"Content-Type": "application/octet-stream",
                                     "Inference-Header-Content-Length": len(header)})
    open(f"{work}/bin{rows}.header-length", "w").write(str(len(header)))
# 256 different inputs (enough for the GPU's lane), to compare the GPU's answers with the CPU's.
rows = [[(p * (i + 3)) % 17 for p in range(64)] for i in range(256)]
open(f"{work}/agree.json", "w").write(json.dumps({"inputs": rows}))
PY

now_ms() { echo $(($(date +%s%N) / 1000000)); }
echo "config,point,concurrency,rows_per_request,requests_per_s,rows_per_s,p50_ms,p99_ms,errors" >"$OUT/gpu.csv"
echo "config,point,concurrency,lane,passes,mean_inputs,mean_forward_ms" >"$OUT/gpu-passes.csv"
echo "config,point,concurrency,threads,count,cpu_pct,busiest_pct" >"$OUT/gpu-threads.csv"
rm -f "$OUT/gpu-kernels.csv"
config=""
start() { # NAME FLAGS...: start the server, wait for readiness, record how long it took
  config=$1
  shift
  local t0
  t0=$(now_ms)
  "${server_cpu[@]}" "$BIN" --host 127.0.0.1 --port "$PORT" --grpc-port 0 "$@" \
    >"$OUT/gpu-$config.log" 2>&1 &
  server=$!
  wait_ready "$URL" 120 kill -0 "$server" || { tail -20 "$OUT/gpu-$config.log" >&2; exit 1; }
  echo "$config,readiness,0,0,,,$(($(now_ms) - t0)),," >>"$OUT/gpu.csv"
}

point() { # NAME BODY CONCURRENCY ROWS PATH [DURATION]
  local name=$1 body=$2 c=$3 rows=$4 path=$5 duration=${6:-$DURATION} report rps p50 p99 errors t0
  curl -fs "$URL/metrics" >"$work/before.prom"
  threads snapshot "$work/before.threads"
  t0=$(now_ms)
  report=$("${wrk_cpu[@]}" wrk -t"$((c < 4 ? c : 4))" -c"$c" -d"$duration" --latency -s "$work/$body.lua" "$URL$path")
  threads "$config,$name,$c" "$work/before.threads" "$(($(now_ms) - t0))" >>"$OUT/gpu-threads.csv"
  curl -fs "$URL/metrics" >"$work/after.prom"
  IFS=, read -r rps p50 p99 errors < <(wrk_summary "$report")
  echo "$config,$name,$c,$rows,$rps,$(awk -v r="$rps" -v n="$rows" 'BEGIN {printf "%.0f", r * n}'),$p50,$p99,$errors" |
    tee -a "$OUT/gpu.csv" >&2
  passes "$config,$name,$c" "$work/before.prom" "$work/after.prom" >>"$OUT/gpu-passes.csv"
}

# threads snapshot FILE: the server's threads' CPU time so far. threads PREFIX BEFORE MS: each
# group of threads' CPU time since, as % of one core over MS, all of them and the busiest: is
# any thread (cubecl's device threads, `DS*`, above all; threads a driver starts from them
# inherit the name) busy all the time the point ran?
threads() {
  python3 - "$server" "$@" <<'PY'
import collections, glob, json, os, re, sys
pid, prefix, before = sys.argv[1], sys.argv[2], sys.argv[3]
ticks = {}
for stat in glob.glob(f"/proc/{pid}/task/*/stat"):
    try:
        text = open(stat).read()
    except OSError:
        continue
    name, rest = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()
    ticks[stat.split("/")[4]] = [name, int(rest[11]) + int(rest[12])]
if prefix == "snapshot":
    json.dump(ticks, open(before, "w"))
    sys.exit()
seconds = int(sys.argv[4]) / 1000 * os.sysconf("SC_CLK_TCK")
earlier = json.load(open(before))
groups = collections.defaultdict(list)
for tid, (name, now) in ticks.items():
    used = now - earlier.get(tid, [name, 0])[1]
    group = name if name.startswith("DS") else re.sub(r"[-_]?\d+$", "", name)
    groups[group].append(100 * used / seconds)
for group, pcts in sorted(groups.items(), key=lambda kv: -sum(kv[1])):
    if sum(pcts) >= 1:
        print(f"{prefix},{group},{len(pcts)},{sum(pcts):.0f},{max(pcts):.0f}")
PY
}

# passes PREFIX BEFORE AFTER: for each lane, the forward passes a point ran, their mean size
# and mean time (the server's own metrics), so a point's time splits into passes and the rest.
passes() {
  python3 - "$@" <<'PY'
import re, sys
prefix, before, after = sys.argv[1:]
def read(path):
    out = {}
    for line in open(path):
        m = re.match(r'ember_inference_(forward_duration_seconds|batch_size)_(sum|count)\{([^}]*)\} (\S+)', line)
        if m:
            lane = re.search(r'lane="([^"]*)"', m[3])
            key = (lane[1] if lane else "device", m[1], m[2])
            out[key] = out.get(key, 0.0) + float(m[4])
    return out
b, a = read(before), read(after)
for lane in sorted({k[0] for k in a}):
    d = lambda metric, part: a.get((lane, metric, part), 0.0) - b.get((lane, metric, part), 0.0)
    n = d("batch_size", "count")
    if n:
        print(f"{prefix},{lane},{n:.0f},{d('batch_size', 'sum') / n:.1f},"
              f"{1000 * d('forward_duration_seconds', 'sum') / n:.3f}")
PY
}

V1=/v1/predict
V2=/v2/models/digits-cnn/infer
full_table() {
  point first-10s json1 64 1 $V1 10s
  point first-10s-256 json256 16 256 $V1 10s
  point single json1 64 1 $V1
  point single json1 1 1 $V1
  point single json1 256 1 $V1
  point json-64 json64 16 64 $V1
  point json-256 json256 16 256 $V1
  point json-1024 json1024 32 1024 $V1
  point binary-1024 bin1024 16 1024 $V2
  point binary-4096 bin4096 16 4096 $V2
}

start gpu --device gpu
curl -fs "$URL/v1/models" >"$OUT/gpu-models.json"
curl -fs -H 'Content-Type: application/json' -d @"$work/agree.json" "$URL$V1" >"$work/gpu.out"
full_table
# The same burst after the server sat idle: a slow start that comes back here is the device
# leaving an idle state (clocks), not kernels compiling, which happens once.
sleep "${IDLE:-30}"
point after-idle json1 64 1 $V1 10s
point after-idle-256 json256 16 256 $V1 10s
stop_server

IFS=';' read -ra variants <<<"$VARIANTS"
for flags in "${variants[@]}"; do
  # shellcheck disable=SC2086 # a variant is a list of flags, split on purpose
  start "gpu$(tr -c 'a-z0-9\n' '-' <<<"$flags" | tr -s '-')" --device gpu $flags
  point first-10s json1 64 1 $V1 10s
  point single json1 256 1 $V1
  point json-64 json64 16 64 $V1
  point binary-4096 bin4096 16 4096 $V2
  stop_server
done

start cpu --device cpu --max-batch 4096
curl -fs -H 'Content-Type: application/json' -d @"$work/agree.json" "$URL$V1" >"$work/cpu.out"
full_table
stop_server

if [ -n "${BASELINE_BIN:-}" ]; then
  BIN=$BASELINE_BIN start gpu-baseline --device gpu
  point single json1 256 1 $V1
  point json-64 json64 16 64 $V1
  point binary-4096 bin4096 16 4096 $V2
  stop_server
  BIN=$BASELINE_BIN start cpu-baseline --device cpu --max-batch 4096
  point json-64 json64 16 64 $V1
  point json-1024 json1024 32 1024 $V1
  point binary-4096 bin4096 16 4096 $V2
  stop_server
fi

# Where a 4096-row pass's device time goes: cubecl's profiler logs every kernel it runs (and
# waits for each, so only the kernels' own times count here, not the pass's).
if [ "${PROFILE:-1}" != 0 ]; then
  export CUBECL_DEBUG_OPTION=profile CUBECL_DEBUG_LOG=$OUT/cubecl-profile.log
  rm -f "$CUBECL_DEBUG_LOG"
  start gpu-profile --device gpu --workers 1 --cpu-lane-below 0
  unset CUBECL_DEBUG_OPTION CUBECL_DEBUG_LOG
  python3 - "$URL$V2" "$work/bin4096.body" "$(cat "$work/bin4096.header-length")" \
    "$OUT/cubecl-profile.log" "$OUT/gpu-kernels.csv" <<'PY'
import collections, re, sys, urllib.request
url, body, header_length, log, table = sys.argv[1:]
body = open(body, "rb").read()
def lines():
    return open(log, errors="replace").read().splitlines()
before = len(lines())
requests = 20
for _ in range(requests):
    urllib.request.urlopen(urllib.request.Request(url, data=body, headers={
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": header_length})).read()
unit = {"ns": 1e-3, "µs": 1.0, "us": 1.0, "ms": 1e3, "s": 1e6}
kernels = collections.defaultdict(list)
for line in lines()[before:]:
    m = re.match(r"\|\s*([\d.]+)(ns|µs|us|ms|s)\s*\|\s*(\w+)", line)
    if m:
        kernels[m[3]].append(float(m[1]) * unit[m[2]])
with open(table, "w") as out:
    out.write("kernel,launches_per_request,mean_us,us_per_request\n")
    for name, times in sorted(kernels.items(), key=lambda kv: -sum(kv[1])):
        out.write(f"{name},{len(times) / requests:g},{sum(times) / len(times):.1f},"
                  f"{sum(times) / requests:.1f}\n")
total = sum(sum(t) for t in kernels.values()) / requests
launches = sum(len(t) for t in kernels.values()) / requests
print(f"4096-row binary request, one thread: {launches:g} kernels, {total:.0f} µs of kernel time")
PY
  stop_server
fi

python3 - "$work/gpu.out" "$work/cpu.out" "$OUT/gpu-models.json" "$OUT/gpu.csv" "$OUT"/gpu-*.log <<'PY'
import csv, json, os, sys
gpu, cpu, models, table, logs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
model = json.load(open(models))["models"][0]
print(f"device: {model['device']} ({model['backend']}), CPU lane below {model.get('cpu_lane_below')} inputs")
g = [p["probabilities"] for p in json.load(open(gpu))["predictions"]]
c = [p["probabilities"] for p in json.load(open(cpu))["predictions"]]
worst = max(abs(a - b) for x, y in zip(g, c) for a, b in zip(x, y))
print(f"GPU and CPU answers on {len(g)} inputs: largest difference {worst:.2e}")
for log in logs:
    text = open(log).read()
    noisy = sum("cooperative matrix" in line for line in text.splitlines())
    warm = [l for l in text.splitlines() if "warm-up passes succeeded" in l]
    print(f"{log}: {noisy} wgpu INFO lines; {warm[0].strip() if warm else 'no warm-up line'}")
print()
rows = list(csv.DictReader(open(table)))
print(f"{'config':18} {'point':12} {'c':>4} {'rows':>5} {'req/s':>10} {'rows/s':>11} {'p50 ms':>8} {'p99 ms':>8} err")
for r in rows:
    if r["point"] == "readiness":
        print(f"{r['config']:18} readiness after {r['p50_ms']} ms")
        continue
    print(f"{r['config']:18} {r['point']:12} {r['concurrency']:>4} {r['rows_per_request']:>5} "
          f"{float(r['requests_per_s']):>10,.0f} {float(r['rows_per_s']):>11,.0f} "
          f"{r['p50_ms']:>8} {r['p99_ms']:>8} {r['errors']}")
print()
print(f"{'config':18} {'point':15} {'c':>4} {'lane':7} {'passes':>9} {'inputs':>8} {'forward ms':>10}")
for r in csv.DictReader(open(table.replace("gpu.csv", "gpu-passes.csv"))):
    print(f"{r['config']:18} {r['point']:15} {r['concurrency']:>4} {r['lane']:7} {r['passes']:>9} "
          f"{r['mean_inputs']:>8} {r['mean_forward_ms']:>10}")
print()
print(f"{'config':18} {'point (CPU time, % of a core)':30} {'c':>4} {'threads':16} {'n':>3} {'all':>6} {'busiest':>7}")
for r in csv.DictReader(open(table.replace("gpu.csv", "gpu-threads.csv"))):
    if r["point"] in ("binary-4096", "single") and r["concurrency"] in ("16", "256"):
        print(f"{r['config']:18} {r['point']:30} {r['concurrency']:>4} {r['threads']:16} "
              f"{r['count']:>3} {r['cpu_pct']:>6} {r['busiest_pct']:>7}")
kernels = table.replace("gpu.csv", "gpu-kernels.csv")
if os.path.exists(kernels):
    print()
    print(f"{'kernel (4096-row request, one thread)':40} {'launches':>8} {'mean µs':>9} {'µs/request':>10}")
    for r in csv.DictReader(open(kernels)):
        print(f"{r['kernel']:40} {r['launches_per_request']:>8} {r['mean_us']:>9} {r['us_per_request']:>10}")
PY
