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
# registry has no such reference.
manifest_json() {
  docker buildx imagetools inspect "$1" --format '{{json .Manifest}}' 2>/dev/null
}

# Digest REF points to, or nothing when the registry does not have it.
ref_digest() {
  manifest_json "$1" | jq -r '.digest // empty' 2>/dev/null || true
}

# One "os/arch digest" line per image in the manifest list REF points to, sorted by platform.
# Attestation manifests (platform unknown/unknown: BuildKit's SBOM and provenance) are left out,
# and arm64's optional "v8" variant is dropped, so platforms read like `--platform` values.
platform_digests() {
  local json
  json=$(manifest_json "$1") || die "$1: no such image in the registry"
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
