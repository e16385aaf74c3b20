#!/usr/bin/env bash
# Trivy scan of one platform's image inside a manifest list, by digest: HIGH/CRITICAL findings
# that have a fix fail the scan. Writes trivy-<LABEL>-<os>-<arch>.{json,sarif} to OUT_DIR (the
# SARIF for GitHub code scanning) and prints the table.
#
# Usage: scan.sh LABEL REF PLATFORM OUT_DIR      (LABEL: cpu or gpu, names the report files)
# Trivy's own TRIVY_* variables apply; SCANNERS (default vuln,secret,misconfig) picks scanners:
# the local replay has no vulnerability database (it is downloaded from a registry at scan time).
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

[ $# -eq 4 ] || die "usage: scan.sh LABEL REF PLATFORM OUT_DIR"
label=$1 ref=$2 platform=$3 out_dir=$4
mkdir -p "$out_dir"
digest=$(platform_digest "$ref" "$platform")
repo=$(ref_repo "$ref")
name=$label-$(tr '/' '-' <<<"$platform")
scanners=${SCANNERS:-vuln,secret,misconfig}
severities=HIGH,CRITICAL
opts=(--quiet --image-src remote --platform "$platform" --scanners "$scanners"
  --severity "$severities" --ignore-unfixed --exit-code 1)
if is_loopback "$repo"; then opts+=(--insecure); fi

log "trivy ($platform, $scanners): $repo@$digest"
status=0
trivy image "${opts[@]}" --format json --output "$out_dir/trivy-$name.json" "$repo@$digest" || status=$?
[ -s "$out_dir/trivy-$name.json" ] || die "trivy wrote no report (exit $status)"
trivy convert --quiet --format sarif --output "$out_dir/trivy-$name.sarif" "$out_dir/trivy-$name.json"
trivy convert --quiet --format table "$out_dir/trivy-$name.json"

# The report must be of the platform asked for: a scan of the wrong image proves nothing.
arch=$(jq -r '.Metadata.ImageConfig.architecture' "$out_dir/trivy-$name.json")
[ "$arch" = "${platform#*/}" ] || die "scanned a $arch image, expected $platform"
findings=$(jq '[.Results[]? | (.Vulnerabilities // []) + (.Secrets // []) + (.Misconfigurations // []) | length] | add // 0' \
  "$out_dir/trivy-$name.json")
log "scan $platform: $findings HIGH/CRITICAL finding(s), trivy exit $status"
exit "$status"
