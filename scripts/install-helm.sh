#!/usr/bin/env bash
# Builds helm once into $POLYSECRET_CACHE/helm-<version>/helm with `go install`
# (no prebuilt binary can be fetched here; a cold build takes ~3 min on 2 cores,
# later runs find it in the cache). Prints the path of the binary.
# Used by scripts/install-test-deps.sh (tests/ops/test_chart.py renders the
# chart) and scripts/lint-deploy.sh.
set -euo pipefail
HELM_VERSION=v3.19.2
CACHE=${POLYSECRET_CACHE:-$HOME/.cache/polysecret}
HELM="$CACHE/helm-$HELM_VERSION/helm"
if [[ ! -x $HELM ]]; then
  echo "building helm $HELM_VERSION into $CACHE (once)" >&2
  start=$(date +%s)
  GOBIN="$CACHE/helm-$HELM_VERSION" GOFLAGS=-mod=mod go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
  echo "helm built in $(( $(date +%s) - start ))s" >&2
fi
echo "$HELM"
