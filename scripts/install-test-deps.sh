#!/usr/bin/env bash
# Installs the real servers and clients the tests run against, caching the big
# downloads under $POLYSECRET_CACHE (outside the repo) so repeat runs are quick.
# Never depends on the cache being there: a fresh machine fetches everything.
set -euo pipefail
cd "$(dirname "$0")/.."
export POLYSECRET_CACHE="${POLYSECRET_CACHE:-$HOME/.cache/polysecret}"
mkdir -p "$POLYSECRET_CACHE"
for part in vault azure; do
  if [ -f "scripts/install-$part.sh" ]; then
    echo "== installing test dependencies: $part"
    bash "scripts/install-$part.sh"
  fi
done
if [ -f tests/conformance/build.sh ]; then
  echo "== building the driver's client (conformance)"
  bash tests/conformance/build.sh
fi
