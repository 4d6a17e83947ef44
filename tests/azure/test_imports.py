"""Workload identity and service principal mounts load neither azure-identity, msal, requests,
azure-core nor urllib3: their tokens and reads go over provider.backends.http1 on the event loop
(issue 16: ~20 MiB of RSS); a mount of plain secrets does not load cryptography either (~8 MiB).

The provider runs in its own interpreter (as tests/ops/test_idle_imports.py runs
``serve``), mounts from the session's Key Vault and Azure AD stand-ins as both
identities, and reports its ``sys.modules``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.azure.conftest import SP_SECRET, Seeded
from tests.support.azure_standin import SP_CLIENT

pytestmark = pytest.mark.azure

REPO = Path(__file__).resolve().parents[2]
# What only the VM managed identity (azure-identity's credential), or certificates and keys
# (cryptography), may still load.
NOT_LOADED = ("azure", "msal", "requests", "charset_normalizer", "cryptography", "urllib3")
# Namespace packages without code: provider.backends.installed's find_spec of the
# extra's modules creates them.
NAMESPACES = {"azure", "azure.keyvault"}

MOUNT_AND_LIST = """
import json, sys, tempfile
from pathlib import Path

from provider.backends.azure import AzureSettings
from tests.support.running import RunningProvider, files_of, pod_attributes, settings_for
from tests.support.tokens import pod_token

given = json.loads(sys.argv[1])
settings = AzureSettings(**given["settings"])
base = {"keyvaultName": "polyvault", "tenantID": given["tenant"],
        "objects": "array:\\n  - |\\n    objectName: plain\\n    objectType: secret\\n"}
audience = "api://AzureADTokenExchange"
wi = pod_attributes({**base, "clientID": given["client"]}, service_account="app",
                    tokens={audience: pod_token(audience, "default", "app")})
sp = pod_attributes(base, service_account="sp-imports")
with tempfile.TemporaryDirectory(prefix="psi-", dir="/tmp") as sockets:
    with RunningProvider(settings_for(Path(sockets), {"azure": settings})) as provider:
        files = [files_of(provider.mount(wi)),
                 files_of(provider.mount(sp, secrets=given["sp"]))]
print(json.dumps({"files": [{k: v[1].decode() for k, v in f.items()} for f in files],
                  "modules": sorted(sys.modules)}))
"""


def test_workload_identity_and_service_principal_mounts_load_no_azure_sdk(
    seeded: Seeded,
) -> None:
    world = seeded.world
    settings = {
        "authority_host": world.tokens.url,
        "keyvault_endpoint": world.vault.url + "/",
        "ca_file": str(world.pki.ca_file),
        "verify_challenge_resource": False,
        "api_version": "7.6",
    }
    given = {
        "settings": settings, "tenant": world.tokens.tenant,
        "client": "11111111-2222-3333-4444-555555555555",
        "sp": {"clientid": SP_CLIENT, "clientsecret": SP_SECRET},
    }
    token_requests = len(world.tokens.requests)
    done = subprocess.run(
        [sys.executable, "-c", MOUNT_AND_LIST, json.dumps(given)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.splitlines()[-1])
    # Both mounts really read the vault, each with its own token from Azure AD.
    assert report["files"] == [{"plain": "three"}, {"plain": "three"}]
    assert world.tokens.requests[token_requests:] == [
        f"POST /{world.tokens.tenant}/oauth2/v2.0/token"
    ] * 2
    modules = set(report["modules"])
    assert {"httptools", "provider.backends.http1", "provider.backends.azure.tokens"} <= modules
    loaded = sorted(
        m for m in modules - NAMESPACES for lazy in NOT_LOADED
        if m == lazy or m.startswith(lazy + ".")
    )
    assert loaded == []
