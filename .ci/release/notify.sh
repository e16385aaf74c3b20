#!/usr/bin/env bash
# The deployment notification: a Markdown summary of what was released (tags, digests,
# platforms, outcome) and of the Trivy scans, written to $GITHUB_STEP_SUMMARY (stdout outside
# GitHub Actions), and the same in Slack's mrkdwn (no tables or headings: bullets and *bold*)
# sent as {"text": ...} to $NOTIFY_WEBHOOK_URL when that is set. Without the variable nothing
# leaves the machine.
#
# Usage: notify.sh --title TEXT [--scans DIR] REPORT_JSON...
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

title="" scans=""
while [ $# -gt 0 ]; do
  case "$1" in
    --title) title=$2; shift 2 ;;
    --scans) scans=$2; shift 2 ;;
    -*) die "unknown option $1" ;;
    *) break ;;
  esac
done
[ -n "$title" ] || die "usage: notify.sh --title TEXT [--scans DIR] REPORT_JSON..."

summary=$(mktemp)
trap 'rm -f "$summary"' EXIT
outcome=released
for report in "$@"; do
  [ -s "$report" ] || { outcome=failed; continue; }
  [ "$(jq -r .outcome "$report")" = released ] || outcome=$(jq -r .outcome "$report")
done
[ $# -gt 0 ] || outcome=failed
{
  printf '## ember-serve %s: %s\n\n' "$title" "$outcome"
  printf '| image | tags (previous digest) | platforms | outcome |\n| --- | --- | --- | --- |\n'
  for report in "$@"; do
    [ -s "$report" ] || continue
    jq -r '"| `\(.candidate)` | \(.tags | map("`\(.tag | split(":") | last)` (\(.previous | .[0:19]))") | join("<br>")) | \(.images | to_entries | map("\(.key) `\(.value | .[0:19])`") | join("<br>")) | \(.outcome) |"' "$report"
  done
  if [ -n "$scans" ] && compgen -G "$scans/trivy-*.json" >/dev/null; then
    printf '\n| Trivy report | scanned image | HIGH/CRITICAL with a fix |\n| --- | --- | --- |\n'
    for json in "$scans"/trivy-*.json; do
      jq -r --arg f "$(basename "$json" .json)" \
        '"| \($f) | \(.Metadata.ImageConfig.os)/\(.Metadata.ImageConfig.architecture) `\(.ArtifactName | split("@") | last | .[0:19])` | \([.Results[]? | (.Vulnerabilities // []) + (.Secrets // []) + (.Misconfigurations // []) | length] | add // 0) |"' "$json"
    done
  fi
} >"$summary"

cat "$summary" >>"${GITHUB_STEP_SUMMARY:-/dev/stdout}"
if [ -n "${NOTIFY_WEBHOOK_URL:-}" ]; then
  message=$(mktemp)
  trap 'rm -f "$summary" "$message"' EXIT
  {
    printf '*ember-serve %s: %s*\n' "$title" "$outcome"
    for report in "$@"; do
      [ -s "$report" ] || continue
      jq -r '"• `\(.candidate)`: \(.outcome)\n    tags: \(.tags | map("`\(.tag | split(":") | last)` (was \(.previous | .[0:19]))") | join(", "))\n    platforms: \(.images | to_entries | map("\(.key) `\(.value | .[0:19])`") | join(", "))"' "$report"
    done
    if [ -n "$scans" ] && compgen -G "$scans/trivy-*.json" >/dev/null; then
      counts=()
      for json in "$scans"/trivy-*.json; do
        counts+=("$(jq -r --arg f "$(basename "$json" .json)" \
          '"\($f | ltrimstr("trivy-")) \([.Results[]? | (.Vulnerabilities // []) + (.Secrets // []) + (.Misconfigurations // []) | length] | add // 0)"' "$json")")
      done
      joined=$(printf '%s, ' "${counts[@]}")
      printf 'Trivy, HIGH/CRITICAL with a fix: %s\n' "${joined%, }"
    fi
  } >"$message"
  if jq -Rs '{text: .}' "$message" \
    | curl -fsS -m 20 -X POST -H 'content-type: application/json' --data-binary @- "$NOTIFY_WEBHOOK_URL" >/dev/null; then
    log "notification sent to the webhook"
  else
    log "WARNING: the webhook did not accept the notification"
  fi
fi
