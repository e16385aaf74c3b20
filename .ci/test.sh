#!/usr/bin/env bash
# The tests, run by both CI definitions: README.md's test command (as a new user runs it where
# .ci/bare.sh can hide what CI installed, then the tests that use that, with it), then stock
# third-party clients against a real server (Triton's HTTP and gRPC clients and perf_analyzer
# over both, a schema fuzzer, a headless browser, hostile clients, a slow-client flood, silent
# HTTP/2 clients). Whatever fails, the server started here is stopped.
#
# `.ci/test.sh suite`: README.md's test command only (the workflow's native arm64 job; the stock
# clients run against the x86-64 build).
set -euo pipefail
mode=${1:-all}
case "$mode" in all | suite) ;; *) echo "usage: $0 [all|suite]" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."
# shellcheck source-path=SCRIPTDIR
source .ci/lib.sh
step() { printf '\n--- %s\n' "$*"; }

step "cargo test (README.md's test command, as a new user runs it: .ci/readme.sh test)"
bash .ci/readme.sh test
if can_run_bare; then
  # That run could not see what .ci/tools.sh installed, so the tests that use it skipped (saying
  # why): run those targets again with it, on the same build.
  step "the tests that use what .ci/tools.sh installed: wgpu on Mesa's Vulkan lavapipe, promtool, jq, docker buildx"
  cargo test --workspace --locked --all-features --lib \
    --test wgpu --test shutdown --test imported --test onnx_export \
    --test metrics --test kubernetes --test release_scripts --test packaging
fi
[ "$mode" = all ] || exit 0

ADDR=127.0.0.1:18095
GRPC=127.0.0.1:18096
server=""
trap stop_server EXIT
./target/debug/ember-serve --host 127.0.0.1 --port 18095 --grpc-port 18096 --device cpu \
  --log-level warn &
server=$!
wait_ready "http://$ADDR" 60 kill -0 "$server"

step "tritonclient.http (stock client: binary tensors, config, statistics, classification, gzip)"
python3 tests/clients/triton_http.py "$ADDR"

step "perf_analyzer 2.41 (HTTP, binary data, c=1 and c=16)"
bash benches/perf_analyzer.sh check "$ADDR"

step "tritonclient.grpc (stock client: raw tensors, config, statistics, classification, health)"
python3 tests/clients/triton_grpc.py "$GRPC" "$ADDR"

step "perf_analyzer 2.41 over gRPC (-i grpc, c=1 and c=16)"
PROTOCOL=grpc bash benches/perf_analyzer.sh check "$GRPC"

step "the repository's models through tritonclient (HTTP and gRPC), checked against ONNX Runtime"
python3 tests/clients/triton_models.py "$ADDR" "$GRPC"

step "perf_analyzer 2.41 on the repository's models (breast-cancer over HTTP; diabetes and digits-onnx, [N, 8, 8], over gRPC)"
MODEL=breast-cancer bash benches/perf_analyzer.sh check "$ADDR"
MODEL=diabetes PROTOCOL=grpc bash benches/perf_analyzer.sh check "$GRPC"
MODEL=digits-onnx PROTOCOL=grpc bash benches/perf_analyzer.sh check "$GRPC"

step "schemathesis --checks all against /api-docs/openapi.json (schemathesis.toml; fixed seed)"
schemathesis run "http://$ADDR/api-docs/openapi.json" --checks all --seed 1 --no-color

step "the drawing page in headless Chromium (screenshots: target/browser/)"
python3 tests/browser/page.py "$ADDR" target/browser/page.png

step "hostile clients (#30): overflowing shapes on 4 paths, an over-long head, a health Watch at SIGTERM"
BIN=./target/debug/ember-serve python3 tests/clients/hostile.py "$ADDR" "$GRPC"

stop_server

step "Triton's repository extension through tritonclient (HTTP and gRPC), the repository mounted read-only: a new version swapped in, two side by side, unload, reload, refusals"
repo=$(mktemp -d)
cp weights/manifest.json weights/digits-cnn.safetensors "$repo/"
ADMIN_KEY=repository-admin-key-0123456789
# The server sees the repository as a read-only mount (KServe's /mnt/models, a volume mounted
# ro) while the client script adds versions from outside, as a volume update would: a write by
# the server would fail with EROFS. Needs root for the mount namespace; elsewhere it runs plain.
# Started with `&`, the function runs in a subshell that each branch replaces (exec), so `$!` is
# the server's PID and stop_server stops the server itself.
read_only_repository() {
  if can_run_bare; then
    # shellcheck disable=SC2016 # the inner shell expands them
    exec unshare --mount --propagation private sh -c \
      'r=$1; shift; mount --bind "$r" "$r" && mount -o remount,bind,ro "$r" && exec "$@"' \
      sh "$repo" "$@"
  else
    echo "not root: the repository is not mounted read-only for this run" >&2
    exec "$@"
  fi
}
EMBER_ADMIN_API_KEY=$ADMIN_KEY read_only_repository ./target/debug/ember-serve --host 127.0.0.1 \
  --port 18095 --grpc-port 18096 --device cpu --log-level warn --weights "$repo" \
  --model-control-mode explicit &
server=$!
wait_ready "http://$ADDR" 60 kill -0 "$server"
python3 tests/clients/triton_repository.py "$ADDR" "$GRPC" "$repo" "$ADMIN_KEY"
stop_server
rm -rf "$repo"

step "the drawing page against a server that requires an API key (headless Chromium)"
KEY=page-test-key-0123456789
./target/debug/ember-serve --host 127.0.0.1 --port 18095 --grpc-port 0 --device cpu \
  --log-level warn --api-key "$KEY" &
server=$!
wait_ready "http://$ADDR" 60 kill -0 "$server"
python3 tests/browser/api_key.py "$ADDR" "$KEY"
stop_server

step "slow clients: 300 connections trickling a body get 408 and are closed (--client-timeout 2s)"
./target/debug/ember-serve --host 127.0.0.1 --port 18095 --grpc-port 0 --device cpu \
  --log-level warn --client-timeout 2s &
server=$!
wait_ready "http://$ADDR" 60 kill -0 "$server"
python3 benches/slow_clients.py "http://$ADDR" 300 15

stop_server

step "silent HTTP/2 clients: 300 per port cost fresh clients nothing, are closed, and do not hold SIGTERM"
BIN=./target/debug/ember-serve python3 benches/silent_http2.py 300
