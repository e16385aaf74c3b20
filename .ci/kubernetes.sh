#!/usr/bin/env bash
# Kubernetes checks, run by .ci/run: every overlay of deploy/ renders with a current kubectl's
# kustomize, every rendered object validates against Kubernetes' OpenAPI schemas in strict mode
# (offline, pinned version), and checkov scans the rendered manifests and the Dockerfiles,
# failing on any finding not fixed or skipped with a reason in .checkov.yaml. Rendered files go
# to target/k8s/, where tests/kubernetes.rs reads them too.
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION=1.33.0
# checkov pins old versions of common packages: it lives in a virtual environment of its own.
CHECKOV_VENV=${CHECKOV_VENV:-/var/tmp/checkov-venv}
CHECKOV=$CHECKOV_VENV/bin/checkov
if [ ! -x "$CHECKOV" ] || [ "$("$CHECKOV" --version)" != 3.3.30 ]; then
  python3 -m venv "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/pip" install --quiet --disable-pip-version-check checkov==3.3.30
fi
OUT=target/k8s
rm -rf "$OUT"
mkdir -p "$OUT"

echo "--- kubectl kustomize ($(kubectl version --client 2>/dev/null | head -n1))"
for dir in deploy/overlays/*/ deploy/kserve/; do
  name=$(basename "$dir")
  kubectl kustomize "$dir" >"$OUT/$name.yaml"
  echo "$name: $(grep -c '^kind:' "$OUT/$name.yaml") objects"
done

echo "--- kubernetes-validate --strict (Kubernetes $K8S_VERSION)"
core=$(mktemp -d)
trap 'rm -rf "$core"' EXIT
# Custom resources have no schema in kubernetes-validate: they are split out and said so.
python3 - "$OUT" "$core" <<'PY'
import pathlib, sys, yaml
out, core = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
crds = {"ServiceMonitor", "InferenceService", "ScaledObject", "PrometheusRule"}
for f in sorted(out.glob("*.yaml")):
    docs = [d for d in yaml.safe_load_all(f.read_text()) if d]
    keep = [d for d in docs if d["kind"] not in crds]
    for d in docs:
        if d["kind"] in crds:
            print(f"SKIPPED {f.name}: {d['kind']}/{d['metadata']['name']} (custom resource; no schema offline)")
    if keep:
        (core / f.name).write_text(yaml.safe_dump_all(keep, sort_keys=False))
PY
kubernetes-validate --strict --quiet -k "$K8S_VERSION" "$core"/*.yaml
echo "every core object of every overlay validates against Kubernetes $K8S_VERSION"

echo "--- checkov (rendered manifests and Dockerfiles; accepted findings carry their reason)"
# Offline: no download of Prisma Cloud's guideline mappings (checkov's own checks only).
export BC_SKIP_MAPPING=TRUE
"$CHECKOV" --quiet --compact -d "$OUT" --framework kubernetes
"$CHECKOV" --quiet --compact --framework dockerfile \
  -f docker/Dockerfile -f docker/Dockerfile.gpu
