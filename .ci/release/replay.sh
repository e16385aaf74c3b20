#!/usr/bin/env bash
# The release path of .github/workflows/build.yml, replayed on this machine with the same
# scripts against a real registry (127.0.0.1:5000 from ../shared/tools/offline-docker): build
# cpu for linux/amd64 + linux/arm64 and gpu for linux/amd64 and push them under a candidate tag
# only; join each into a manifest list; scan every platform; smoke-test every platform (arm64
# under QEMU); promote by digest to staging and to a production version; then promote a
# deliberately broken candidate and check that the post-deploy check fails and the moved tags
# roll back; and one broken on arm64 only, which passes promote's amd64 check and is caught and
# rolled back by the arm64 check after it (the workflow's post-deploy-arm64, --only-from). Logs, reports, Trivy JSON/SARIF and the summary go to target/release-replay/.
#
# Usage: .ci/release/replay.sh             (as root; .ci/run calls it)
#        .ci/release/replay.sh --prebuild  only build the arm64 CPU image into BuildKit's cache,
#                                          pushing nothing (.ci/run starts it beside the amd64
#                                          image builds, to fill the cores they leave idle)
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

OD=${OD:-$REPO_ROOT/../shared/tools/offline-docker}
if [ ! -f "$OD" ] || [ "$(id -u)" != 0 ]; then
  echo "SKIPPED: release replay ($OD not found or not root)"
  exit 0
fi
cd "$REPO_ROOT" || exit 1
out=${REPLAY_OUT:-target/release-replay}
rm -rf "$out"
mkdir -p "$out/scans"
started=$SECONDS
step() { printf '\n--- %s (at %ss)\n' "$*" "$((SECONDS - started))"; }

eval "$(bash "$OD" up)"
registry=$(bash "$OD" registry)
bash "$OD" qemu >/dev/null
repo=$registry/owner/ember-serve
rev=$(git rev-parse --short=12 HEAD)
candidate=$repo:sha-$rev
export VERSION=sha-$rev REVISION=$rev

# The arm64 builder stage runs `rustup target add`, which needs rustup's download server.
platforms=linux/amd64,linux/arm64
if curl -fsS -m 20 -o /dev/null https://static.rust-lang.org/dist/channel-rust-1.95.0.toml.sha256; then
  bash "$OD" bases --arch arm64 >/dev/null
else
  echo "SKIPPED: arm64 (rustup server not reachable)"
  platforms=linux/amd64
fi
IFS=, read -ra platform_list <<<"$platforms"

if [ "${1:-}" = --prebuild ]; then
  [[ ,$platforms, == *,linux/arm64,* ]] || exit 0
  began=$SECONDS
  bash "$OD" bake --set cpu.platform=linux/arm64 --set cpu.output=type=cacheonly cpu
  echo "prebuild: cpu linux/arm64 built into the cache in $((SECONDS - began)) s"
  exit 0
fi

step "build and push the candidates (a tag per platform; no release tag)"
bake_push() {
  local target=$1 platform=$2 tag=$3 log began=$SECONDS
  log="$out/bake-$target-${platform#*/}.log"
  if ! bash "$OD" bake --set "$target.platform=$platform" --set "$target.tags=$tag" --push "$target" >"$log" 2>&1; then
    tail -n 40 "$log"
    die "bake $target for $platform failed (whole log: $log)"
  fi
  echo "$target $platform: built and pushed as $tag in $((SECONDS - began)) s"
}
for platform in "${platform_list[@]}"; do
  bake_push cpu "$platform" "$candidate-${platform#*/}"
done
bake_push gpu linux/amd64 "$candidate-gpu-amd64"
parts=()
for platform in "${platform_list[@]}"; do parts+=("$candidate-${platform#*/}"); done
"$RELEASE_DIR/assemble.sh" "$candidate" "${parts[@]}"
"$RELEASE_DIR/assemble.sh" "$candidate-gpu" "$candidate-gpu-amd64"
"$RELEASE_DIR/verify.sh" "$candidate" "$platforms"
"$RELEASE_DIR/verify.sh" "$candidate-gpu" linux/amd64

step "scan every platform's digest (Trivy)"
echo "offline: no vulnerability database to download, so the secret and misconfiguration scanners run"
export SCANNERS=secret,misconfig TRIVY_SKIP_CHECK_UPDATE=true
for platform in "${platform_list[@]}"; do
  "$RELEASE_DIR/scan.sh" cpu "$candidate" "$platform" "$out/scans"
done
"$RELEASE_DIR/scan.sh" gpu "$candidate-gpu" linux/amd64 "$out/scans"

step "smoke-test every platform of the candidates"
"$RELEASE_DIR/smoke.sh" "$candidate" "${platform_list[@]}"
"$RELEASE_DIR/smoke.sh" "$candidate-gpu" linux/amd64

step "push to main: staging and staging-gpu move"
"$RELEASE_DIR/release.sh" --state "$out/staging-cpu.state" --report "$out/staging-cpu.json" \
  --platforms "$platforms" "$candidate" "$repo:staging"
"$RELEASE_DIR/release.sh" --state "$out/staging-gpu.state" --report "$out/staging-gpu.json" \
  --platforms linux/amd64 "$candidate-gpu" "$repo:staging-gpu"

# The registry keeps its storage between runs and a released version never moves (tags.sh):
# each replay releases versions no earlier run used.
epoch=$(date +%s)
good_v=1.0.$epoch bad_v=1.0.$((epoch + 1))
step "tag v$good_v: production tags move to the same digests"
"$RELEASE_DIR/tags.sh" --check "v$good_v"
# What metadata-action derives from the tag, less what tags.sh holds back (nothing here).
moving=$("$RELEASE_DIR/tags.sh" "$candidate" "v$good_v" "$repo:$good_v" "$repo:1.0" "$repo:1" "$repo:latest" <<<"v$good_v")
mapfile -t cpu_tags <<<"$moving"
[ "${#cpu_tags[@]}" = 4 ] || die "tags.sh held back tags of the first release: $moving"
"$RELEASE_DIR/release.sh" --state "$out/v$good_v-cpu.state" --report "$out/v$good_v-cpu.json" \
  --platforms "$platforms" "$candidate" "${cpu_tags[@]}"
"$RELEASE_DIR/release.sh" --state "$out/v$good_v-gpu.state" --report "$out/v$good_v-gpu.json" \
  --platforms linux/amd64 "$candidate-gpu" "$repo:$good_v-gpu" "$repo:1.0-gpu" "$repo:1-gpu" "$repo:latest-gpu"
good=$(ref_digest "$repo:latest")
[ "$good" = "$(ref_digest "$candidate")" ] || die "latest is $good, not the candidate"

step "tag v$bad_v, a broken candidate: the post-deploy check fails and the tags roll back"
# The same images with a start-up setting that makes the server refuse to start.
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
parts=()
for platform in "${platform_list[@]}"; do
  printf 'FROM %s@%s\nENV EMBER_WEIGHTS=/app/no-such-weights\n' \
    "$repo" "$(platform_digest "$candidate" "$platform")" >"$context/Dockerfile"
  docker buildx build --quiet --platform "$platform" --provenance=false --sbom=false --push \
    -t "$candidate-broken-${platform#*/}" "$context" >/dev/null
  parts+=("$candidate-broken-${platform#*/}")
done
"$RELEASE_DIR/assemble.sh" "$candidate-broken" "${parts[@]}"
if "$RELEASE_DIR/release.sh" --state "$out/v$bad_v-cpu.state" --report "$out/v$bad_v-cpu.json" \
  --platforms "$platforms" "$candidate-broken" "$repo:$bad_v" "$repo:1.0" "$repo:1" "$repo:latest"; then
  die "the broken release passed its post-deploy check"
fi
for tag in latest 1 1.0; do
  now=$(ref_digest "$repo:$tag")
  [ "$now" = "$good" ] || die "$tag points at $now after the rollback, not $good"
  echo "after the rollback $repo:$tag -> $now (the $good_v release)"
done

if [[ ,$platforms, == *,linux/arm64,* ]]; then
  arm_v=1.0.$((epoch + 2))
  step "tag v$arm_v, broken on arm64 only: promote's amd64 check passes, then the arm64 check (the workflow's post-deploy-arm64 job) fails and rolls back only the tags still on it"
  "$RELEASE_DIR/assemble.sh" "$candidate-arm-broken" "$candidate-amd64" "$candidate-broken-arm64"
  arm_broken=$(ref_digest "$candidate-arm-broken")
  "$RELEASE_DIR/release.sh" --state "$out/v$arm_v-cpu.state" --report "$out/v$arm_v-cpu.json" \
    --platforms "$platforms" --check-platforms linux/amd64 \
    "$candidate-arm-broken" "$repo:$arm_v" "$repo:1.0" "$repo:1" "$repo:latest"
  if "$RELEASE_DIR/smoke.sh" "$repo:$arm_v" linux/arm64; then
    die "the arm64 post-deploy check passed on an arm64 image that cannot start"
  fi
  "$RELEASE_DIR/rollback.sh" --only-from "$arm_broken" "$out/v$arm_v-cpu.state"
  for tag in latest 1 1.0; do
    now=$(ref_digest "$repo:$tag")
    [ "$now" = "$good" ] || die "$tag points at $now after the arm64 rollback, not $good"
    echo "after the arm64 rollback $repo:$tag -> $now (the $good_v release)"
  done
fi

step "tags.sh against the registry: a released version never moves; a maintenance release leaves latest"
if "$RELEASE_DIR/tags.sh" "$candidate-broken" "v$good_v" "$repo:$good_v" <<<"v$good_v" >/dev/null; then
  die "tags.sh would move $good_v, already released, to another digest"
fi
moving=$(printf 'v0.9.0\nv%s\nv0.9.1\n' "$good_v" \
  | "$RELEASE_DIR/tags.sh" "$candidate" v0.9.1 "$repo:0.9.1" "$repo:0.9" "$repo:0" "$repo:latest" | paste -sd' ')
[ "$moving" = "$repo:0.9.1 $repo:0.9 $repo:0" ] || die "0.9.1 after $good_v would move: $moving"
echo "0.9.1 after $good_v moves: $moving (latest stays on $good_v)"

step "deployment summary (what notify.sh posts)"
"$RELEASE_DIR/notify.sh" --title "release replay on $registry" --scans "$out/scans" \
  "$out"/staging-*.json "$out/v$good_v"-*.json "$out/v$bad_v-cpu.json" | tee "$out/summary.md"
echo
echo "release replay passed in $((SECONDS - started)) s: $candidate [$platforms]"
