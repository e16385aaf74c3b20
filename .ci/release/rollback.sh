#!/usr/bin/env bash
# Re-points tags at the digests they had before a release: every tag recorded in a state file
# that release.sh wrote (automatic rollback), or one tag given by hand (the manual workflow).
# A tag that did not exist before the release cannot be "restored": it is named, loudly, and
# left for a person to delete in the registry. Every tag is tried even when one fails; each is
# reported, and any failure makes the exit status non-zero.
#
# Usage: rollback.sh STATE_FILE
#        rollback.sh TAG_REF sha256:DIGEST
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

# Re-point one tag; on failure say why and return non-zero (the caller goes on with the others).
restore() {
  local ref=$1 digest=$2 now out
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
  2) restore "$1" "$2" || die "$1 was not restored" ;;
  *) die "usage: rollback.sh STATE_FILE | rollback.sh TAG_REF sha256:DIGEST" ;;
esac
