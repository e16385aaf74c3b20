#!/usr/bin/env bash
# Model versions rolled out under load (#28): release ember-serve in --model-control-mode explicit
# on a repository with breast-cancer 1.0.0 (bundled), 1.1.0 and 1.2.0, and wrk at c=64 on its
# unversioned V2 infer (one row, JSON), in three parts:
#
# 1. steady, then the same load while swap cycles run back to back (each: load every version,
#    then load one alone, which drains the other two; ten at least): failed requests (must be
#    0), which versions answered, p99 steady and during the swaps (target: at most 2x); and,
#    idle, RSS with one version, with three, back with one, and after 50 more cycles;
# 2. shadowing 10 % of requests to another version against none, ROUNDS interleaved rounds on one
#    server (the policy flips through the API between rounds): throughput cost (target <= 10 %).
#
#   bash benches/swap.sh                 # DURATION=10s per phase, ROUNDS=3: about 2 minutes
#
# Needs wrk (apt-get install wrk). Writes benches/results/swap.json; prints a summary. Targets
# 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=.ci/lib.sh
source .ci/lib.sh
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
FEATURES=${FEATURES:-flex,mimalloc}
PORT=18190
URL=http://127.0.0.1:$PORT
ADMIN=swap-bench-admin-key-0123456789
OUT=benches/results
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }

cargo build --profile dist --locked --features "$FEATURES" --bin ember-serve >&2
repo=$(mktemp -d)
lua=$(mktemp --suffix=.lua)
server=""
trap 'stop_server; rm -rf "$repo" "$lua"' EXIT
cp weights/manifest.json weights/digits-cnn.safetensors "$repo/"
for v in 1.1.0 1.2.0; do
  mkdir -p "$repo/breast-cancer/$v"
  cp tests/versions/breast-cancer/1.1.0/{manifest.json,model.bpk} "$repo/breast-cancer/$v/"
done

row=$(python3 -c 'import json; print(json.dumps(json.load(open("weights/breast-cancer/examples.json"))["inputs"]["features"][0]))')
cat > "$lua" <<LUA
wrk.method = "POST"
wrk.body = '{"inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP32", "data": [$row]}]}'
wrk.headers["Content-Type"] = "application/json"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) failed = 0; versions = {} end
function response(status, headers, body)
  if status ~= 200 then failed = failed + 1 end
  local v = body:match('"parameters":{"model_version":"([%d%.]+)"')
  if v then versions[v] = (versions[v] or 0) + 1 end
end
function done(summary, latency, requests)
  local f, seen = 0, {}
  for _, t in ipairs(threads) do
    f = f + t:get("failed")
    for k, n in pairs(t:get("versions")) do seen[k] = (seen[k] or 0) + n end
  end
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  local parts = {}
  for k, n in pairs(seen) do table.insert(parts, k .. "=" .. n) end
  table.sort(parts)
  io.write(string.format("RESULT %.1f %.3f %.3f %d %d %s\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, f, errors, table.concat(parts, ",")))
end
LUA

load() { # CONFIG_JSON: load breast-cancer with that Triton config; fails unless 200
  local body
  body=$(python3 -c 'import json,sys; print(json.dumps({"parameters": {"config": sys.argv[1]}}))' "$1")
  curl -fsS -o /dev/null -H "Authorization: Bearer $ADMIN" -X POST \
    "$URL/v2/repository/models/breast-cancer/load" -d "$body"
}
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$server/status"; }
run_wrk() { # DURATION: the RESULT line: req/s p50_ms p99_ms failed errors versions
  wrk -t2 -c64 -d"$1" --latency -s "$lua" "$URL/v2/models/breast-cancer/infer" | grep '^RESULT'
}

EMBER_ADMIN_API_KEY=$ADMIN target/dist/ember-serve --host 127.0.0.1 --port $PORT --grpc-port 0 \
  --device cpu --log-level warn --weights "$repo" --model-control-mode explicit \
  --version-policy 'breast-cancer=specific:1.0.0' &
server=$!
wait_ready "$URL" 20 kill -0 "$server"
wrk -t2 -c64 -d3s -s "$lua" "$URL/v2/models/breast-cancer/infer" >/dev/null  # warm-up

# 1. Steady; RSS with one version, with three, back to one, and after 50 more load/unload
#    cycles (all idle, so only the versions differ); then the same load while swap cycles run
#    back to back for the whole window (at least ten).
steady=$(run_wrk "$DURATION")
rss_one=$(rss_kib)
load '{"version_policy": {"all": {}}}'
rss_three=$(rss_kib)
load '{"version_policy": {"specific": {"versions": ["1.0.0"]}}}'
rss_back=$(rss_kib)
for _ in $(seq 1 50); do
  load '{"version_policy": {"all": {}}}'
  load '{"version_policy": {"specific": {"versions": ["1.0.0"]}}}'
done
rss_churned=$(rss_kib)
run_wrk "$DURATION" > "$repo/swapping" &
wrk_pid=$!
cycles=0
order=(1.1.0 1.2.0 1.0.0)
while kill -0 "$wrk_pid" 2>/dev/null; do
  load '{"version_policy": {"all": {}}}'
  load "{\"version_policy\": {\"specific\": {\"versions\": [\"${order[$((cycles % 3))]}\"]}}}"
  cycles=$((cycles + 1))
done
wait "$wrk_pid"
swapping=$(cat "$repo/swapping")
[ "$cycles" -ge 10 ] || { echo "only $cycles swap cycles ran during the window" >&2; exit 1; }

# 2. Shadow 10 % to 1.1.0 against none, interleaved.
load '{"version_policy": {"all": {}}, "default_version": "1.0.0"}'
shadow_rounds=""
for round in $(seq 1 "$ROUNDS"); do
  load '{"version_policy": {"all": {}}, "default_version": "1.0.0"}'
  plain=$(run_wrk "$DURATION")
  load '{"version_policy": {"all": {}}, "default_version": "1.0.0", "shadow": {"version": "1.1.0", "percent": 10}}'
  shadowed=$(run_wrk "$DURATION")
  shadow_rounds="$shadow_rounds$round|$plain|$shadowed;"
done
comparisons=$(curl -fs "$URL/metrics" | grep '^ember_shadow_comparisons_total' || true)

python3 - "$OUT" "$steady" "$swapping" "$cycles" "$rss_one" "$rss_three" "$rss_back" \
  "$rss_churned" "$shadow_rounds" "$comparisons" "$DURATION" "$FEATURES" <<'PY'
import json, os, platform, statistics, sys
out, steady, swapping, cycles, rss1, rss3, rss_back, rss_churned, rounds, comparisons, duration, features = sys.argv[1:]
def parse(line):
    f = line.split()
    return {"requests_per_s": float(f[1]), "p50_ms": float(f[2]), "p99_ms": float(f[3]),
            "failed": int(f[4]), "socket_errors": int(f[5]),
            "versions": dict(kv.split("=") for kv in f[6].split(",")) if len(f) > 6 else {}}
steady, swapping = parse(steady), parse(swapping)
shadow = []
for r in filter(None, rounds.split(";")):
    n, plain, shadowed = r.split("|")
    shadow.append({"round": int(n), "plain": parse(plain), "shadow_10pct": parse(shadowed)})
ratio = [s["shadow_10pct"]["requests_per_s"] / s["plain"]["requests_per_s"] for s in shadow]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
summary = {
    "machine": {"cores": os.cpu_count(), "cpu": cpu, "kernel": platform.release()},
    "features": features, "duration": duration, "concurrency": 64,
    "steady": steady, "during_swaps": swapping, "swap_cycles": int(cycles),
    "p99_during_swaps_over_steady": round(swapping["p99_ms"] / steady["p99_ms"], 3),
    "rss_kib": {"one_version": int(rss1), "three_versions": int(rss3), "back_to_one": int(rss_back),
                "after_50_more_cycles": int(rss_churned)},
    "shadow_rounds": shadow,
    "shadow_throughput_ratio_median": round(statistics.median(ratio), 3),
    "shadow_comparisons": comparisons.splitlines(),
}
json.dump(summary, open(f"{out}/swap.json", "w"), indent=2)
print(f"steady c=64: {steady['requests_per_s']:.0f} req/s, p99 {steady['p99_ms']:.2f} ms, failed {steady['failed']}")
print(f"during {cycles} swap cycles: {swapping['requests_per_s']:.0f} req/s, p99 {swapping['p99_ms']:.2f} ms "
      f"({summary['p99_during_swaps_over_steady']}x steady; target <= 2x), failed {swapping['failed']}, "
      f"socket errors {swapping['socket_errors']}, versions {swapping['versions']}")
print(f"RSS (idle): one version {int(rss1)/1024:.1f} MiB, three {int(rss3)/1024:.1f} MiB, back to one "
      f"{int(rss_back)/1024:.1f} MiB, after 50 more load/unload cycles {int(rss_churned)/1024:.1f} MiB")
print("shadow 10 % / none, per round: " + ", ".join(f"{r:.3f}" for r in ratio)
      + f"; median {summary['shadow_throughput_ratio_median']} (target >= 0.90)")
print(f"machine: {os.cpu_count()} cores, {cpu}; wrk and the server share them")
if swapping["failed"] or swapping["socket_errors"] or steady["failed"]:
    sys.exit("requests failed")
PY
