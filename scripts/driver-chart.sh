#!/usr/bin/env bash
# Puts the Secrets Store CSI Driver's chart (v1.6.0), our chart's optional
# dependency (secrets-store-csi-driver.install), into daemonset/chart/charts/.
#
# Users get it as Helm does: `helm dependency build daemonset/chart` from the
# driver's chart repository, or inside a released polysecret chart package.
# That repository is not reachable here, and the upstream chart is not ours to
# commit; but the driver's Go module, which the conformance tests download
# anyway, carries the very same chart under charts/. So the tests package it
# from there (cached in Go's module cache; the .tgz is git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
DRIVER_MODULE=sigs.k8s.io/secrets-store-csi-driver@v1.6.0
out=daemonset/chart/charts
[[ -f $out/secrets-store-csi-driver-1.6.0.tgz ]] && exit 0
HELM=$(bash scripts/install-helm.sh)
dir=$(GOFLAGS=-mod=mod go mod download -json "$DRIVER_MODULE" | "${PYTHON:-python3}" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
mkdir -p "$out"
"$HELM" package "$dir/charts/secrets-store-csi-driver" --destination "$out" >/dev/null
echo "driver chart packaged into $out" >&2
