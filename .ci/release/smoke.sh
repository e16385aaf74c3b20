#!/usr/bin/env bash
# Pulls an image by platform and proves it serves there: the pulled image is of that
# architecture, its binary is an ELF for it and reports `uname -m` of it when run (natively, or
# under QEMU), it runs as non-root with a read-only root filesystem, turns ready and classifies
# one image. Emulated platforms are slow, so nothing more is asked of them.
#
# Usage: smoke.sh REF [PLATFORM...]     (no PLATFORM: every platform in REF's manifest list)
# SMOKE_READY_TIMEOUT: seconds to wait for /health/ready (default 180; QEMU start-up is slow).
# SMOKE_PULL=0: REF is an image already in the daemon, built for the one PLATFORM given
# (benches/base-images.sh); nothing is pulled.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

[ $# -ge 1 ] || die "usage: smoke.sh REF [PLATFORM...]"
ref=$1
shift
if [ $# -eq 0 ]; then
  # Read first, then split: a failed read inside `< <(...)` would go unnoticed.
  listing=$(platform_digests "$ref") || die "cannot list the platforms of $ref"
  mapfile -t platforms < <(awk '{print $1}' <<<"$listing")
  if [ "${#platforms[@]}" = 0 ] || [ -z "${platforms[0]}" ]; then
    die "$ref lists no platform images: nothing to smoke-test"
  fi
  set -- "${platforms[@]}"
fi
body="$REPO_ROOT/tests/data/predict-zero.json"
cid=""
workdir=$(mktemp -d)
cleanup() {
  if [ -n "$cid" ]; then docker rm -f "$cid" >/dev/null 2>&1 || true; fi
  rm -rf "$workdir"
}
trap cleanup EXIT

# Whether container $1 is still running (wait_ready gives up as soon as it is not).
running() { [ "$(docker inspect -f "{{.State.Running}}" "$1" 2>/dev/null)" = true ]; }

smoke_one() {
  local platform=$1 machine
  machine=$(uname_machine "$platform")
  if [ "${SMOKE_PULL:-1}" != 0 ]; then
    log "smoke $platform: docker pull --platform $platform $ref"
    docker pull -q --platform "$platform" "$ref" >/dev/null || die "pull $ref ($platform) failed"
  fi
  local pulled
  pulled=$(docker image inspect -f '{{.Os}}/{{.Architecture}}' "$ref")
  [ "$pulled" = "$platform" ] || die "pulled a $pulled image for $platform"

  # The binary: an ELF for this architecture (e_machine at byte 18: 62 x86-64, 183 AArch64).
  cid=$(docker create --platform "$platform" "$ref")
  local e_machine
  docker cp "$cid:/app/ember-serve" "$workdir/ember-serve"
  docker rm "$cid" >/dev/null
  cid=""
  e_machine=$(od -An -tu2 -j18 -N2 "$workdir/ember-serve" | tr -d ' ')
  if command -v file >/dev/null; then log "smoke $platform: $(file -b "$workdir/ember-serve" | cut -d, -f1-2)"; fi
  rm -f "$workdir/ember-serve"
  case "$machine:$e_machine" in
    x86_64:62 | aarch64:183) log "smoke $platform: /app/ember-serve is an ELF for $machine (e_machine $e_machine)" ;;
    *) die "/app/ember-serve has ELF e_machine $e_machine, not $machine" ;;
  esac

  # ... and it runs there: the kernel (or QEMU) answers uname with this architecture.
  local report
  report=$(docker run --rm --platform "$platform" "$ref" version) || die "'ember-serve version' failed on $platform"
  grep -qx "machine: $machine" <<<"$report" || die "on $platform the binary reports: $report"
  log "smoke $platform: ember-serve version says $(paste -sd' ' <<<"$report")"

  local user
  user=$(docker image inspect -f '{{.Config.User}}' "$ref")
  [ "$user" = "65532:65532" ] || die "$platform image runs as '$user', not 65532:65532"

  cid=$(docker run -d --platform "$platform" --read-only -p 127.0.0.1::8080 "$ref")
  local port url
  # An exited container has no published port: wait_ready's liveness check then says so.
  port=$(docker port "$cid" 8080/tcp 2>/dev/null | sed -n '1s/.*://p' || true)
  url="http://127.0.0.1:$port"
  if ! wait_ready "$url" "${SMOKE_READY_TIMEOUT:-180}" running "$cid"; then
    docker logs "$cid" 2>&1 | tail -n 20 >&2
    die "$platform container not ready (running: $(docker inspect -f '{{.State.Running}} exit {{.State.ExitCode}}' "$cid"))"
  fi
  local answer
  answer=$(curl -fsS "$url/v1/predict" -H 'content-type: application/json' --data-binary "@$body") \
    || die "$platform: /v1/predict failed"
  jq -e '.predictions[0].label == "0"' <<<"$answer" >/dev/null || die "$platform predicted: $answer"
  log "smoke $platform: ready, predicted $(jq -r '.predictions[0].label' <<<"$answer") on $(jq -r '.backend + "/" + .device' <<<"$answer"), user $user"
  docker rm -f "$cid" >/dev/null
  cid=""
}

for platform in "$@"; do
  smoke_one "$platform"
done
log "smoke ok: $ref on $*"
