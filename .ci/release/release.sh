#!/usr/bin/env bash
# Promotes a scanned, smoke-tested candidate to release tags by digest (no rebuild), checks the
# released tag on every platform, and rolls the tags back by itself if that check fails.
#
#   1. record the digest every tag points at now (STATE, for rollback.sh and for people); if
#      the registry cannot say for any tag, stop before moving anything;
#   2. the candidate must be a manifest list of exactly PLATFORMS;
#   3. `imagetools create` points every tag at the candidate's digest, and each is read back;
#   4. post-deploy: smoke.sh pulls the first tag per platform and checks that it serves (only
#      the CHECK platforms when given: the workflow checks arm64 natively in a job of its own,
#      .github/workflows/build.yml's post-deploy-arm64);
#   5. if 3 or 4 fails, or the script is interrupted after 3 began: rollback.sh STATE, then exit
#      non-zero.
# A JSON record of the outcome goes to REPORT (for notify.sh).
#
# Usage: release.sh --state FILE --report FILE --platforms P[,P...] [--check-platforms P[,P...]]
#                   CANDIDATE_REF TAG_REF...
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

state="" report="" platforms="" check_platforms=""
while [ $# -gt 0 ]; do
  case "$1" in
    --state) state=$2; shift 2 ;;
    --report) report=$2; shift 2 ;;
    --platforms) platforms=$2; shift 2 ;;
    --check-platforms) check_platforms=$2; shift 2 ;;
    --) shift; break ;;
    -*) die "unknown option $1" ;;
    *) break ;;
  esac
done
if [ -z "$state" ] || [ -z "$report" ] || [ -z "$platforms" ] || [ $# -lt 2 ]; then
  die "usage: release.sh --state FILE --report FILE --platforms P[,P...] CANDIDATE_REF TAG_REF..."
fi
check_platforms=${check_platforms:-$platforms}
IFS=, read -ra check_list <<<"$check_platforms"
for p in "${check_list[@]}"; do
  [[ ,$platforms, == *,$p,* ]] || die "--check-platforms $p is not one of --platforms $platforms"
done
candidate=$1
shift
tags=("$@")

source_digest=$(ref_digest "$candidate")
[ -n "$source_digest" ] || die "candidate $candidate is not in the registry"
source_ref="$(ref_repo "$candidate")@$source_digest"

# 1. What every tag points at before we touch it.
mkdir -p "$(dirname "$state")" "$(dirname "$report")"
: >"$state"
for tag in "${tags[@]}"; do
  previous=$(tag_state "$tag") || die "cannot tell what $tag points at now, so it could not be rolled back: nothing was moved"
  printf '%s %s\n' "$tag" "$previous" >>"$state"
done
log "before promotion:"
sed 's/^/    /' "$state" >&2

write_report() {
  jq -n --arg outcome "$1" --arg candidate "$source_ref" --arg platforms "$platforms" \
    --rawfile state "$state" --rawfile images "$images_file" '{
      outcome: $outcome,
      candidate: $candidate,
      platforms: ($platforms | split(",")),
      images: ($images | split("\n") | map(select(length > 0) | split(" ") | {(.[0]): .[1]}) | add),
      tags: ($state | split("\n") | map(select(length > 0) | split(" ") | {tag: .[0], previous: .[1]}))
    }' >"$report"
}

# 2. The candidate is what was scanned and smoke-tested: exactly these platforms.
images_file=$(mktemp)
trap 'rm -f "$images_file" "${create_log:-}"' EXIT
"$RELEASE_DIR/verify.sh" "$candidate" "$platforms" | tail -n +2 | sed 's/^ *//' >"$images_file"

rollback_and_fail() {
  log "$1: rolling back"
  "$RELEASE_DIR/rollback.sh" "$state" || log "ROLLBACK INCOMPLETE: see the lines above"
  write_report rolled-back
  die "release of $source_ref failed ($1); tags restored to the digests recorded in $state"
}

# Interrupted (a cancelled run: SIGINT, then SIGTERM) once tags may have moved: roll them back
# rather than leave them on a digest whose post-deploy check never finished. The long steps run
# in the background so that `wait` returns at once on the signal.
moved=false child=""
on_signal() {
  trap - INT TERM
  if [ -n "$child" ]; then kill "$child" 2>/dev/null || true; fi
  if $moved; then
    rollback_and_fail "interrupted by a signal"
  fi
  die "interrupted by a signal before any tag moved"
}
trap on_signal INT TERM
# Wait for the background step $child (its output redirected where it started, so that the
# trap's own messages still reach stderr); its exit status.
wait_child() {
  local status=0
  wait "$child" || status=$?
  child=""
  return "$status"
}

# 3. Promote by digest: one manifest list, several names; no image is rebuilt or re-pushed.
create_args=()
for tag in "${tags[@]}"; do create_args+=(-t "$tag"); done
moved=true
create_log=$(mktemp)
docker buildx imagetools create "${create_args[@]}" "$source_ref" >"$create_log" 2>&1 &
child=$!
if ! wait_child; then
  log "$(cat "$create_log")"
  rollback_and_fail "imagetools create failed"
fi
for tag in "${tags[@]}"; do
  now=$(ref_digest "$tag")
  [ "$now" = "$source_digest" ] || rollback_and_fail "$tag points at '$now', not $source_digest"
  log "promoted $tag -> $source_digest"
done

# 4. Post-deploy: the released tag, pulled by platform, serves.
"$RELEASE_DIR/smoke.sh" "${tags[0]}" "${check_list[@]}" &
child=$!
if ! wait_child; then
  rollback_and_fail "post-deploy check of ${tags[0]} failed"
fi
write_report released
log "released $source_ref as ${tags[*]}"
