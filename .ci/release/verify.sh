#!/usr/bin/env bash
# Fails unless an image reference is a manifest list holding exactly the given platforms
# (attestations aside); prints its digest and each platform's digest.
#
# Usage: verify.sh REF linux/amd64,linux/arm64
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

[ $# -eq 2 ] || die "usage: verify.sh REF PLATFORM[,PLATFORM...]"
ref=$1
want=$(tr ',' '\n' <<<"$2" | sort | paste -sd, -)
lines=$(platform_digests "$ref")
have=$(awk '{print $1}' <<<"$lines" | paste -sd, -)
printf '%s %s\n' "$ref" "$(ref_digest "$ref")"
while read -r line; do printf '  %s\n' "$line"; done <<<"$lines"
[ "$have" = "$want" ] || die "$ref holds [$have], expected exactly [$want]"
