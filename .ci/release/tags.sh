#!/usr/bin/env bash
# Which of a release's tags may move. docker/metadata-action derives X.Y.Z, X.Y, X and `latest`
# (each with the image's suffix, such as -gpu) from the git tag alone, so a 1.2.9 maintenance
# release after 1.3.0 would take `latest` and `1` back to an older release. Given the versions
# released so far, this keeps X.Y, X and `latest` only where this version is the highest of its
# range, and refuses a version tag that already points at another digest: a released version
# never changes.
#
# Usage: tags.sh --check VERSION            fail unless VERSION is X.Y.Z (a leading v allowed)
#        tags.sh CANDIDATE_REF VERSION TAG_REF... < RELEASED
# RELEASED: one released version per line (`git tag --list 'v*'`; other lines are ignored). The
# tags to move are printed one per line.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

semver='^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$'

if [ "${1:-}" = --check ]; then
  [[ ${2:-} =~ $semver ]] || die "'${2:-}' is not a release version: tags must be vX.Y.Z (semantic versioning)"
  exit 0
fi
[ $# -ge 3 ] || die "usage: tags.sh CANDIDATE_REF VERSION TAG_REF... < RELEASED"
candidate=$1 version=${2#v}
shift 2
[[ $version =~ $semver ]] || die "'$version' is not a release version (X.Y.Z)"
major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}

# The highest of the released versions (and this one) that start with prefix $1 ("" for all).
highest() {
  { printf '%s\n' "$version"; sed -nE 's/^v?([0-9]+\.[0-9]+\.[0-9]+)$/\1/p' <<<"$released"; } \
    | grep -E "^${1//./\\.}" | sort -V | tail -n 1
}
released=$(cat)
candidate_digest=$(ref_digest "$candidate")
[ -n "$candidate_digest" ] || die "candidate $candidate is not in the registry"

for ref in "$@"; do
  name=${ref##*:}
  base=${name%%-*}
  case "$base" in
    "$version")
      now=$(tag_state "$ref") || die "cannot tell whether $ref exists; nothing was decided"
      if [ "$now" != none ] && [ "$now" != "$candidate_digest" ]; then
        die "$ref already points at $now: a released version never moves (release $major.$minor.$((${version##*.} + 1)) instead)"
      fi
      keep=true
      ;;
    "$major.$minor") [ "$(highest "$major.$minor.")" = "$version" ] && keep=true || keep=false ;;
    "$major") [ "$(highest "$major.")" = "$version" ] && keep=true || keep=false ;;
    latest) [ "$(highest "")" = "$version" ] && keep=true || keep=false ;;
    *) keep=true ;;
  esac
  if $keep; then
    printf '%s\n' "$ref"
  else
    log "not moving $ref: $version is older than a version already released in its range"
  fi
done
