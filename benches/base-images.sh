#!/usr/bin/env bash
# The base-image comparison: the CPU image's binary and weights on four runtimes (bake group
# "compare": distroless, Debian slim, Ubuntu 24.04, and Alpine with a static musl binary), each
# built for each PLATFORM, then measured: image size (uncompressed, as `docker image inspect`
# says), wall time of its bake (in the order below, so each variant pays only what the
# earlier ones did not build: Alpine's musl build is its own), and .ci/release/smoke.sh on it
# (the right architecture, uid 65532, read-only root filesystem, ready, one right prediction).
# A Markdown table goes to stdout and, on GitHub Actions, to the job summary.
#
#   benches/base-images.sh [--stand-ins] [PLATFORM...]     (default: linux/amd64)
#
# --stand-ins: this machine, where no base image can be pulled: builds through
# ../shared/tools/offline-docker and makes local stand-ins for Alpine (scratch with passwd and
# group files) and Ubuntu (the Debian stand-in, amd64 only), and says so in the table. Their
# sizes are not the real bases'; the binary layers are real.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source-path=SCRIPTDIR/..
source .ci/release/lib.sh

stand_ins=false
if [ "${1:-}" = --stand-ins ]; then
  stand_ins=true
  shift
fi
[ $# -gt 0 ] || set -- linux/amd64
OD=../shared/tools/offline-docker
REGISTRY=${REGISTRY:-ghcr.io/owner}
export REGISTRY VERSION=${VERSION:-compare}

bake() {
  if $stand_ins; then bash "$OD" bake "$@"; else docker buildx bake "$@"; fi
}

# Stand-ins for the bases this machine cannot pull; prints "VAR=image" lines for PLATFORM.
stand_in_bases() {
  local arch=${1#linux/} dir
  dir=$(mktemp -d)
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65532:65532:nobody:/nonexistent:/sbin/nologin\n' >"$dir/passwd"
  printf 'root:x:0:\nnobody:x:65532:\n' >"$dir/group"
  printf 'FROM scratch\nCOPY passwd group /etc/\n' >"$dir/Dockerfile"
  docker buildx build -q --platform "$1" --load -t "localhost/stand-in/alpine:3.22-$arch" "$dir" >/dev/null
  rm -rf "$dir"
  echo "ALPINE_IMAGE=localhost/stand-in/alpine:3.22-$arch"
  if [ "$arch" = amd64 ]; then
    docker tag localhost/stand-in/debian:bookworm-slim localhost/stand-in/ubuntu:24.04
    echo "UBUNTU_IMAGE=localhost/stand-in/ubuntu:24.04"
  fi
}

if $stand_ins; then
  eval "$(bash "$OD" up)"
  bash "$OD" bases --arch arm64 >&2
  for platform in "$@"; do
    [ "$platform" = linux/amd64 ] || bash "$OD" qemu >&2
  done
fi

# The base each variant's bake target names by default (what the workflow's job pulls).
declare -A base_var=([distroless]=RUNTIME_IMAGE [debian-slim]=GPU_RUNTIME_IMAGE [ubuntu]=UBUNTU_IMAGE [alpine]=ALPINE_IMAGE)
plan=$(env -u RUNTIME_IMAGE -u GPU_RUNTIME_IMAGE -u UBUNTU_IMAGE -u ALPINE_IMAGE docker buildx bake --print compare)

rows=()
for platform in "$@"; do
  arch=${platform#linux/}
  if $stand_ins; then
    while read -r assignment; do export "${assignment?}"; done < <(stand_in_bases "$platform")
  fi
  for variant in distroless debian-slim ubuntu alpine; do
    target=compare-$variant
    image=ember-serve-compare:$variant-$arch
    base=$(jq -r --arg t "$target" --arg v "${base_var[$variant]}" '.target[$t].args[$v]' <<<"$plan")
    if $stand_ins; then
      case "$variant:$arch" in
        debian-slim:arm64 | ubuntu:arm64)
          rows+=("| $variant | $platform | $base: not built here, no arm64 Debian or Ubuntu stand-in (the base-images workflow builds it) | | |")
          continue
          ;;
        alpine:*) base="$base, stand-in: scratch + passwd" ;;
        ubuntu:*) base="$base, stand-in: the Debian slim stand-in" ;;
        *) base="$base, stand-in" ;;
      esac
    fi
    log "bake $target for $platform"
    start=$(date +%s)
    bake --set "$target.platform=$platform" --set "$target.tags=$image" --load "$target" >&2
    seconds=$(($(date +%s) - start))
    size=$(docker image inspect -f '{{.Size}}' "$image")
    if SMOKE_PULL=0 .ci/release/smoke.sh "$image" "$platform" >&2; then smoke=passed; else smoke=FAILED; fi
    rows+=("| $variant ($base) | $platform | $(awk -v b="$size" 'BEGIN {printf "%.2f MB (%d B)", b / 1e6, b}') | ${seconds} s | $smoke |")
  done
done

table=$(
  echo "| runtime (base) | platform | image size | bake time | smoke |"
  echo "| --- | --- | --- | --- | --- |"
  printf '%s\n' "${rows[@]}"
)
echo "$table"
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  { echo "### Base images ($(git rev-parse --short HEAD))"; echo; echo "$table"; } >>"$GITHUB_STEP_SUMMARY"
fi
! grep -q FAILED <<<"$table"
