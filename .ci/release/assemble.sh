#!/usr/bin/env bash
# Joins single-platform images into one manifest list (what a multi-platform `bake --push`
# pushes by itself in GitHub Actions; the local replay builds one platform at a time).
#
# Usage: assemble.sh TARGET_REF SOURCE_REF...
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

[ $# -ge 2 ] || die "usage: assemble.sh TARGET_REF SOURCE_REF..."
target=$1
shift
sources=()
for src in "$@"; do
  digest=$(ref_digest "$src")
  [ -n "$digest" ] || die "$src: no such image in the registry"
  sources+=("$(ref_repo "$src")@$digest")
done
out=$(docker buildx imagetools create -t "$target" "${sources[@]}" 2>&1) \
  || die "imagetools create -t $target: $out"
log "assembled $target ($(ref_digest "$target")) from ${sources[*]}"
