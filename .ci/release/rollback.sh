#!/usr/bin/env bash
# Re-points tags at the digests they had before a release: every tag recorded in a state file
# that release.sh wrote (automatic rollback), or one tag given by hand (the manual workflow).
# A tag that did not exist before the release cannot be "restored": it is named, loudly, and
# left for a person to delete in the registry.
#
# Usage: rollback.sh STATE_FILE
#        rollback.sh TAG_REF sha256:DIGEST
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

restore() {
  local ref=$1 digest=$2 now
  if [ "$digest" = none ]; then
    log "WARNING: $ref did not exist before this release; it still points at $(ref_digest "$ref"). Delete it in the registry if it must not be pulled."
    return 0
  fi
  [[ $digest == sha256:* ]] || die "$ref: '$digest' is not a sha256 digest"
  out=$(docker buildx imagetools create -t "$ref" "$(ref_repo "$ref")@$digest" 2>&1) \
    || die "re-pointing $ref to $digest: $out"
  now=$(ref_digest "$ref")
  [ "$now" = "$digest" ] || die "$ref points at $now after rollback, expected $digest"
  log "rolled back $ref -> $digest"
}

case $# in
  1)
    [ -s "$1" ] || die "state file $1 is missing or empty"
    while read -r ref digest; do
      [ -n "$ref" ] && restore "$ref" "$digest"
    done <"$1"
    ;;
  2) restore "$1" "$2" ;;
  *) die "usage: rollback.sh STATE_FILE | rollback.sh TAG_REF sha256:DIGEST" ;;
esac
