#!/usr/bin/env bash
# Re-points tags at the digests they had before a release: every tag recorded in a state file
# that release.sh wrote (automatic rollback), or one tag given by hand (the manual workflow).
# A tag that did not exist before the release cannot be "restored": it is named, loudly, and
# left for a person to delete in the registry. Every tag is tried even when one fails; each is
# reported, and any failure makes the exit status non-zero.
#
# --only-from DIGEST (a check that runs after the release job let go of its lock, such as the
# native arm64 post-deploy check): only tags that still point at DIGEST, this release's, are
# re-pointed; a tag a later release has moved since is named and left alone.
#
# Usage: rollback.sh [--only-from sha256:DIGEST] STATE_FILE
#        rollback.sh TAG_REF sha256:DIGEST
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

only_from=""
if [ "${1:-}" = --only-from ]; then
  only_from=$2
  shift 2
  [[ $only_from == sha256:* ]] || die "--only-from takes a sha256 digest, not '$only_from'"
fi

# Re-point one tag; on failure say why and return non-zero (the caller goes on with the others).
restore() {
  local ref=$1 digest=$2 now out
  if [ -n "$only_from" ]; then
    if ! now=$(tag_state "$ref"); then
      log "NOT RESTORED $ref: the registry cannot say what it points at now"
      return 1
    fi
    if [ "$now" != "$only_from" ]; then
      log "LEFT $ref: it points at $now, moved since this release ($only_from); not touched"
      return 0
    fi
  fi
  if [ "$digest" = none ]; then
    log "WARNING: $ref did not exist before this release; it still points at $(ref_digest "$ref"). Delete it in the registry if it must not be pulled."
    return 0
  fi
  if [[ $digest != sha256:* ]]; then
    log "NOT RESTORED $ref: '$digest' is not a sha256 digest"
    return 1
  fi
  if ! out=$(docker buildx imagetools create -t "$ref" "$(ref_repo "$ref")@$digest" 2>&1); then
    log "NOT RESTORED $ref: re-pointing it to $digest failed: $out"
    return 1
  fi
  now=$(ref_digest "$ref")
  if [ "$now" != "$digest" ]; then
    log "NOT RESTORED $ref: it points at '$now' after rollback, expected $digest"
    return 1
  fi
  log "rolled back $ref -> $digest"
}

case $# in
  1)
    [ -s "$1" ] || die "state file $1 is missing or empty"
    # Every tag is tried, whatever happened to the one before: an incident needs all it can get.
    failed=()
    while read -r ref digest; do
      if [ -n "$ref" ] && ! restore "$ref" "$digest" </dev/null; then failed+=("$ref"); fi
    done <"$1"
    [ "${#failed[@]}" = 0 ] || die "not restored: ${failed[*]} (see above; the digests they must point at are in $1)"
    ;;
  2)
    [ -z "$only_from" ] || die "--only-from goes with a state file"
    restore "$1" "$2" || die "$1 was not restored"
    ;;
  *) die "usage: rollback.sh [--only-from sha256:DIGEST] STATE_FILE | rollback.sh TAG_REF sha256:DIGEST" ;;
esac
