#!/usr/bin/env bash
# A version tag releases what main already built, tested and signed for that commit: never a
# rebuild (two builds of one commit differ, if only in their timestamps, and production would
# ship a digest staging never ran). Waits for the commit's candidates (main's run may still be
# going when the tag is pushed) until each exists and carries a signature made by IDENTITY (main's
# workflow), then prints their digests as `cpu=...` and `gpu=...` lines for $GITHUB_OUTPUT.
#
# Usage: reuse.sh IDENTITY CPU_REF GPU_REF
# REUSE_WAIT: seconds to wait in all (default 3600); REUSE_POLL: seconds between looks (30).
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

[ $# -eq 3 ] || die "usage: reuse.sh IDENTITY CPU_REF GPU_REF"
identity=$1
wait_s=${REUSE_WAIT:-3600}
deadline=$((SECONDS + wait_s))

# The digest REF points at once it is signed by IDENTITY; nothing (and why, on stderr) if not yet.
signed_digest() {
  local ref=$1 digest
  digest=$(tag_state "$ref") || return 1
  if [ "$digest" = none ]; then
    log "$ref: not pushed yet"
    return 1
  fi
  if ! cosign verify "$(ref_repo "$ref")@$digest" --certificate-identity "$identity" \
    --certificate-oidc-issuer https://token.actions.githubusercontent.com >/dev/null 2>&1; then
    log "$ref: $digest has no signature by $identity yet"
    return 1
  fi
  printf '%s\n' "$digest"
}

for pair in "cpu $2" "gpu $3"; do
  read -r name ref <<<"$pair"
  until digest=$(signed_digest "$ref"); do
    [ "$SECONDS" -lt "$deadline" ] \
      || die "$ref: no image signed by $identity within ${wait_s}s. Tag a commit whose run on main passed (it is on staging), or re-run this job once it has"
    sleep "${REUSE_POLL:-30}"
  done
  log "reusing $ref -> $digest (signed by $identity)"
  printf '%s=%s\n' "$name" "$digest"
done
