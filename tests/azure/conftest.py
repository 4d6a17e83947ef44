"""Fixtures for the Azure tests: an HTTPS Key Vault and Azure AD on loopback, seeded once.

See tests/support/azure_standin.py for why these are our own servers and what they check.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.support.azure_standin import (
    AUDIENCE,
    MI_CLIENT,
    SP_CLIENT,
    TENANT,
    WI_CLIENT,
    AzureWorld,
    Chain,
    azure_world,
    make_chain,
)
from tests.support.running import RunningProvider, pod_attributes, settings_for
from tests.support.tokens import pod_token

POD_TOKEN = pod_token(AUDIENCE)
# Service accounts whose tokens the workload identity's federated credentials accept.
FEDERATED = ("app", "reuse", "fresh")
SP_SECRET = "sp-Secret~Value.0123456789"


@dataclass
class Seeded:
    """What the vault holds; tests compare mounted files with these."""

    world: AzureWorld
    versions: dict[str, list[str]] = field(default_factory=dict)  # name -> ids, oldest first
    keys: dict[str, list[Any]] = field(default_factory=dict)  # name -> public keys
    chains: list[Chain] = field(default_factory=list)  # pfx-cert versions
    pfx: list[bytes] = field(default_factory=list)
    pem_cert: str = ""


def _pem_of(chain: Chain) -> str:
    key = chain.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return (key + chain.leaf.public_bytes(serialization.Encoding.PEM)).decode()


def seed(world: AzureWorld) -> Seeded:
    s = Seeded(world)
    vault = world.vault
    v1 = vault.set_secret("plain", "one")
    v2 = vault.set_secret("plain", "two", enabled=False)
    v3 = vault.set_secret("plain", "three")
    s.versions["plain"] = [v1, v2, v3]
    vault.set_secret("b64", base64.b64encode(b"\x00binary\xff").decode())
    vault.set_secret("hexed", b"\x01\x02hex".hex())
    vault.set_secret("json", '{"user": "app", "password": "pa55"}', content_type="application/json")
    vault.set_secret("gone-latest", "old")
    vault.set_secret("gone-latest", "new-but-disabled", enabled=False)
    for name, kty, curve in (
        ("rsa-key", "RSA", None),
        ("rsa-key", "RSA", None),
        ("ec-key", "EC", ec.SECP384R1()),
    ):
        version, public = vault.create_key(name, kty, curve=curve)
        s.versions.setdefault(name, []).append(version)
        s.keys.setdefault(name, []).append(public)
    vault.create_oct_key("oct-key")
    # A PKCS#12 certificate with a chain, two versions. The PFX lists the CA
    # certificates root first, so ordering them leaf -> root is our work.
    for _ in range(2):
        chain = make_chain("app.example.com")
        pfx = pkcs12.serialize_key_and_certificates(
            b"app",
            chain.key,
            chain.leaf,
            [chain.root, chain.intermediate],
            serialization.NoEncryption(),
        )
        s.versions.setdefault("pfx-cert", []).append(vault.import_certificate("pfx-cert", pfx=pfx))
        s.chains.append(chain)
        s.pfx.append(pfx)
    s.pem_cert = _pem_of(make_chain("pem.example.com"))
    s.versions["pem-cert"] = [vault.import_certificate("pem-cert", pem=s.pem_cert)]
    world.tokens.federated[WI_CLIENT] = POD_TOKEN
    world.tokens.federated_subjects[WI_CLIENT] = {
        f"system:serviceaccount:default:{sa}" for sa in FEDERATED
    }
    world.tokens.service_principals[SP_CLIENT] = SP_SECRET
    world.tokens.managed.add(MI_CLIENT)
    return s


@pytest.fixture(scope="session")
def seeded() -> Iterator[Seeded]:
    with azure_world() as world:
        yield seed(world)


@pytest.fixture(scope="session")
def provider(seeded: Seeded, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProvider]:
    sockets = Path(tmp_path_factory.mktemp("azsock"))
    settings = settings_for(sockets, {"azure": seeded.world.settings()})
    with RunningProvider(settings) as running:
        yield running


@pytest.fixture(autouse=True)
def _open_vault(seeded: Seeded) -> Iterator[None]:
    """Tests that change the access policy or inject faults leave no trace."""
    yield
    seeded.world.vault.allowed = None
    seeded.world.vault.reset_faults()


def objects(*items: str) -> str:
    """The Azure `objects` parameter: `array:` of YAML strings, as users write it."""
    out = "array:\n"
    for item in items:
        out += "  - |\n" + "".join(f"    {line}\n" for line in item.strip().splitlines())
    return out


def wi_params(*items: str, **extra: str) -> dict[str, str]:
    params = {
        "keyvaultName": "polyvault",
        "tenantID": TENANT,
        "clientID": WI_CLIENT,
        "objects": objects(*items),
    }
    params.update(extra)
    return params


def wi_attrs(
    *items: str, token: str | None = None, service_account: str = "app", **extra: str
) -> dict[str, str]:
    token = token or pod_token(AUDIENCE, "default", service_account)
    return pod_attributes(
        wi_params(*items, **extra), tokens={AUDIENCE: token}, service_account=service_account
    )
