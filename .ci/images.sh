#!/usr/bin/env bash
# Build both bake targets with real BuildKit (base images swapped for local stand-ins by
# ../shared/tools/offline-docker) and run them: read-only, non-root, healthy, a right answer,
# a clean exit on SIGTERM, the CPU image under its size target. Run by .ci/run, which has that
# stand-in daemon; on GitHub the candidate job builds the same bake targets and the smoke job
# (.ci/release/smoke.sh) runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source-path=SCRIPTDIR
source .ci/lib.sh

OD=../shared/tools/offline-docker
VERSION=${VERSION:-ci}
REGISTRY=${REGISTRY:-ghcr.io/owner}
# The model repository the images compile in (the bake variable): the bundled one unless set;
# .ci/run sets tests/models, a model the tests add (two inputs, two outputs).
MODEL_REPOSITORY=${MODEL_REPOSITORY:-weights}
export VERSION REGISTRY MODEL_REPOSITORY

build() {
  if [ ! -f "$OD" ] || [ "$(id -u)" != 0 ]; then
    echo "SKIPPED container build: $OD not found or not root (a machine outside this setup)"
    return 0
  fi
  # Reuses the daemon .ci/run started (or starts one); .ci/run stops it.
  eval "$(bash "$OD" up)"
  trap 'docker rm -f ember-ci-cpu ember-ci-gpu >/dev/null 2>&1 || true' EXIT
  echo "--- bake cpu + gpu (linux/amd64; model repository: $MODEL_REPOSITORY)"
  bash "$OD" bake 2>&1 | tee /tmp/ember-bake.log
  # BuildKit reports what .dockerignore let into the context.
  grep -A3 'load build context' /tmp/ember-bake.log | grep -m1 -o 'transferring context: [0-9.]*[kMG]*B' || true
  local cpu="$REGISTRY/ember-serve:$VERSION" gpu="$REGISTRY/ember-serve:$VERSION-gpu"

  echo "--- cpu image: read-only root filesystem, non-root"
  docker run -d --name ember-ci-cpu --read-only -p 127.0.0.1:18080:8080 -p 127.0.0.1:18082:8081 \
    "$cpu" >/dev/null
  wait_ready http://127.0.0.1:18080 60
  predict_zero http://127.0.0.1:18080
  echo "--- cpu image: every model of $MODEL_REPOSITORY, over HTTP and gRPC"
  python3 tests/clients/triton_models.py 127.0.0.1:18080 127.0.0.1:18082 "$MODEL_REPOSITORY"
  user=$(docker inspect -f '{{.Config.User}}' "$cpu")
  [ "$user" = "65532:65532" ] || { echo "cpu image runs as '$user', not 65532" >&2; exit 1; }
  pid_uid=$(docker top ember-ci-cpu -eo pid,uid | awk 'NR>1 {print $2; exit}')
  [ "$pid_uid" = "65532" ] || { echo "cpu process uid $pid_uid" >&2; exit 1; }
  health=""
  for _ in $(seq 1 40); do
    health=$(docker inspect -f '{{.State.Health.Status}}' ember-ci-cpu)
    [ "$health" = healthy ] && break
    sleep 0.5
  done
  [ "$health" = healthy ] || { echo "HEALTHCHECK says $health" >&2; exit 1; }
  echo "cpu image: user $user, process uid $pid_uid, health $health"
  docker stop -t 10 ember-ci-cpu >/dev/null
  code=$(docker inspect -f '{{.State.ExitCode}}' ember-ci-cpu)
  [ "$code" = 0 ] || { echo "cpu container exited $code on SIGTERM" >&2; docker logs ember-ci-cpu | tail -20; exit 1; }

  echo "--- gpu image: no adapter here, so --device auto falls back to the CPU"
  docker run -d --name ember-ci-gpu --read-only -p 127.0.0.1:18081:8080 -p 127.0.0.1:18083:8081 \
    "$gpu" >/dev/null
  wait_ready http://127.0.0.1:18081 60
  predict_zero http://127.0.0.1:18081
  echo "--- gpu image: every model of $MODEL_REPOSITORY, over HTTP and gRPC"
  python3 tests/clients/triton_models.py 127.0.0.1:18081 127.0.0.1:18083 "$MODEL_REPOSITORY"
  # Logs into a variable first: with pipefail, `docker logs | grep -m1` fails whenever grep exits
  # before docker logs has written everything (SIGPIPE), even though the line was found.
  gpu_logs=$(docker logs ember-ci-gpu 2>&1)
  grep -m1 '"device selected"' <<<"$gpu_logs" || { echo "no device log line" >&2; exit 1; }
  user=$(docker inspect -f '{{.Config.User}}' "$gpu")
  [ "$user" = "65532:65532" ] || { echo "gpu image runs as '$user'" >&2; exit 1; }
  # What the NVIDIA Vulkan ICD loads besides the driver's own files: the loader and libglvnd.
  echo "--- gpu image: the Vulkan loader and libglvnd the NVIDIA ICD needs are installed"
  docker run --rm --entrypoint dpkg-query "$gpu" -W -f '${Package} ${Version}\n' \
    libvulkan1 libglvnd0 libegl1

  echo "--- image sizes (linux/amd64, uncompressed, stand-in bases)"
  for img in "$cpu" "$gpu"; do
    printf '%s\t%s bytes\n' "$img" "$(docker image inspect -f '{{.Size}}' "$img")"
  done
  cpu_size=$(docker image inspect -f '{{.Size}}' "$cpu")
  [ "$cpu_size" -le 40000000 ] || { echo "cpu image is $cpu_size bytes, over the 40 MB target" >&2; exit 1; }
}

build
