#!/usr/bin/env bash
# Static checks, run by both CI definitions (.ci/run and .github/workflows/build.yml): Rust
# formatting and clippy, the workflows and shell scripts, Prometheus config and alert rules,
# the Dockerfiles, Trivy's config and secret scans, and the Kubernetes manifests.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n--- %s\n' "$*"; }

step "rustfmt"
cargo fmt --all -- --check

# The default build (flex) is the images' and is built for real by .ci/images.sh; the two
# passes here are the ndarray-only build, which must keep building, and everything at once.
step "clippy (ndarray only, no default features)"
cargo clippy --workspace --locked --all-targets --no-default-features --features ndarray -- -D warnings

step "clippy (all features)"
cargo clippy --workspace --locked --all-targets --all-features -- -D warnings

step "cargo deny: licences, duplicate versions, sources (deny.toml), and advisories where reachable"
# The RustSec advisory database is a git repository on GitHub: the workflow's runner fetches
# it once (a failed fetch fails there; --frozen then keeps check from fetching it again); a
# machine that cannot reach GitHub checks the rest.
# cargo deny reads every crate's manifest, Windows-only ones too, and --frozen may not download
# them: a cold registry gets them from cargo first.
cargo fetch --locked
if cargo deny fetch db >/dev/null 2>&1; then
  cargo deny --frozen check
elif [ "${GITHUB_ACTIONS:-}" = true ]; then
  echo "cargo deny could not fetch the advisory database" >&2
  exit 1
else
  echo "SKIPPED: cargo deny advisories (the RustSec database on GitHub is out of reach here)"
  cargo deny --frozen check licenses bans sources
fi

step "cargo shear: no unused or misplaced dependency"
cargo shear

step "actionlint, shellcheck"
actionlint
shellcheck -x .ci/run .ci/*.sh .ci/release/*.sh benches/*.sh tests/release/docker

step "promtool: scrape config, alert rules, autoscaling recording rules"
promtool check config docker/prometheus.yml
promtool check rules docker/prometheus-rules.yml
promtool test rules docker/prometheus-rules.test.yml
promtool check rules deploy/autoscaling/recording-rules.yml
promtool test rules deploy/autoscaling/recording-rules.test.yml

step "hadolint"
hadolint docker/Dockerfile docker/Dockerfile.gpu docker/base-images.Dockerfile

step "trivy config (HIGH/CRITICAL fail)"
trivy config --quiet --skip-check-update --severity HIGH,CRITICAL --exit-code 1 .

step "trivy secret scan"
trivy fs --quiet --scanners secret --skip-dirs target --exit-code 1 .

step "Kubernetes: render every overlay, validate strictly, checkov"
bash .ci/kubernetes.sh
