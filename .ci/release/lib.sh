#!/usr/bin/env bash
# Sourced by the release scripts, never run: logging, and reading manifest lists through
# `docker buildx imagetools`, which talks to whatever registry the Docker CLI is logged in to
# (ghcr.io in GitHub Actions, the loopback registry in the local replay).
set -euo pipefail

RELEASE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$RELEASE_DIR/../.." && pwd)
export RELEASE_DIR REPO_ROOT
# shellcheck source=.ci/lib.sh
source "$REPO_ROOT/.ci/lib.sh"

log() { printf '[release] %s\n' "$*" >&2; }
die() {
  printf '[release] FAILED: %s\n' "$*" >&2
  # In GitHub Actions the message also becomes an error annotation on the run.
  if [ "${GITHUB_ACTIONS:-}" = true ]; then printf '::error title=release::%s\n' "$*"; fi
  exit 1
}

# The repository part of an image reference: registry/path without :tag or @digest.
ref_repo() {
  local ref=${1%%@*}
  local last=${ref##*/}
  if [[ $last == *:* ]]; then ref=${ref%:*}; fi
  printf '%s\n' "$ref"
}

# True for references to a registry on this machine, which speaks plain HTTP.
is_loopback() {
  case "$1" in 127.* | localhost:* | localhost/*) return 0 ;; *) return 1 ;; esac
}

# The descriptor JSON of REF (a manifest list: digest, manifests[] with platforms); fails if the
# registry has no such reference or cannot be read, with the registry's words on stderr.
manifest_json() {
  local out err status=0
  err=$(mktemp)
  out=$(docker buildx imagetools inspect "$1" --format '{{json .Manifest}}' 2>"$err") || status=$?
  if [ "$status" != 0 ]; then log "$1: $(tail -n 1 "$err")"; fi
  rm -f "$err"
  [ "$status" = 0 ] && printf '%s\n' "$out"
}

# Digest REF points to, or nothing when the registry does not have it (or could not be read).
ref_digest() {
  manifest_json "$1" 2>/dev/null | jq -r '.digest // empty' 2>/dev/null || true
}

# What tag REF points at, for a rollback to restore: its digest, or `none` only when the registry
# answered that there is no such tag. Any other failure (a 5xx, a refused login, no network) is
# an error, never `none`: a rollback would otherwise leave that tag on the broken digest.
tag_state() {
  local json err
  err=$(mktemp)
  if json=$(manifest_json "$1" 2>"$err"); then
    rm -f "$err"
    jq -er '.digest' <<<"$json" 2>/dev/null || { log "$1: the registry's answer names no digest"; return 1; }
  elif grep -q ': not found$' "$err"; then
    rm -f "$err"
    echo none
  else
    cat "$err" >&2
    rm -f "$err"
    return 1
  fi
}

# One "os/arch digest" line per image in the manifest list REF points to, sorted by platform.
# Attestation manifests (platform unknown/unknown: BuildKit's SBOM and provenance) are left out,
# and arm64's optional "v8" variant is dropped, so platforms read like `--platform` values.
platform_digests() {
  local json
  json=$(manifest_json "$1") || die "$1: cannot read it from the registry (above)"
  jq -r '
    if (.manifests | type) != "array" then error("not a manifest list") else . end
    | .manifests[] | select(.platform.os != "unknown")
    | .platform as $p
    | ($p.os + "/" + $p.architecture
       + (if ($p.variant // "") != "" and ($p.architecture + "/" + $p.variant) != "arm64/v8"
          then "/" + $p.variant else "" end)) + " " + .digest' <<<"$json" | sort
}

# The digest of PLATFORM's image inside the manifest list REF.
platform_digest() {
  local ref=$1 platform=$2 digest
  digest=$(platform_digests "$ref" | awk -v p="$platform" '$1 == p {print $2}')
  [ -n "$digest" ] || die "$ref has no $platform image"
  printf '%s\n' "$digest"
}

# `uname -m` for a Docker platform's architecture.
uname_machine() {
  case "${1#*/}" in
    amd64) echo x86_64 ;;
    arm64) echo aarch64 ;;
    *) die "no uname mapping for $1" ;;
  esac
}
