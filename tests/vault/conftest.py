"""Fixtures for the Vault backend: one real OpenBao (plain, TLS and mutual-TLS
listeners) seeded once per session, and a fresh provider per test."""

from __future__ import annotations

import base64
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from provider.backends.vault import VaultSettings
from tests.support.openbao import (
    AUTH_MOUNT,
    OTHER_MOUNT,
    OpenBao,
    TokenSigner,
    add_policy,
    add_role,
    enable_jwt_auth,
    openbao_server,
)
from tests.support.running import RunningProvider, pod_attributes, settings_for

# A value that must never appear in an error message or a log line.
KNOWN_SECRET = "s3cr3t-Value-7f1d2c"
CUSTOM_AUDIENCE = "polysecret-test"
BINARY = b"bin\x00\xff\x10ary"


@dataclass
class Vault:
    server: OpenBao
    signer: TokenSigner
    namespaces: bool  # whether this OpenBao serves namespaces (vaultNamespace tests)

    @property
    def address(self) -> str:
        return self.server.address

    def root(self) -> Any:
        return self.server.client()


def _seed(bao: OpenBao, signer: TokenSigner) -> bool:
    root = bao.client()
    enable_jwt_auth(root, signer, AUTH_MOUNT)
    enable_jwt_auth(root, signer, OTHER_MOUNT)
    kv2 = root.secrets.kv.v2
    kv2.create_or_update_secret(
        path="app",
        mount_point="secret",
        secret={
            "username": "admin",
            "password": KNOWN_SECRET,
            "config": {"b": [True, "x<y&z"], "a": 1},
            "b64": base64.b64encode(BINARY).decode(),
            "hex": BINARY.hex(),
            "not-b64": "%%%",
        },
    )
    kv2.create_or_update_secret(path="versioned", mount_point="secret", secret={"value": "one"})
    kv2.create_or_update_secret(path="versioned", mount_point="secret", secret={"value": "two"})
    kv2.create_or_update_secret(path="other", mount_point="secret", secret={"value": "others"})
    root.sys.enable_secrets_engine("kv", path="kv1", options={"version": "1"})
    root.write_data("kv1/app", data={"token": "kv1-value", "port": 5432})
    root.sys.enable_secrets_engine("pki", path="pki", config={"max_lease_ttl": "87600h"})
    root.write_data("pki/root/generate/internal",
                    data={"common_name": "polysecret test root", "ttl": "8760h"})
    root.write_data("pki/roles/example", data={
        "allowed_domains": ["example.com"], "allow_subdomains": True, "max_ttl": "72h",
    })
    add_policy(root, "app-read", {
        "secret/data/app": ["read"],
        "secret/data/versioned": ["read"],
        "secret/data/missing": ["read"],
        "kv1/*": ["read"],
        "pki/issue/example": ["update"],
    })
    add_policy(root, "other-read", {"secret/data/other": ["read"]})
    add_role(root, "app", ["app"], ["app-read"])
    add_role(root, "other", ["other"], ["other-read"])
    add_role(root, "app-aud", ["app"], ["app-read"], audience=CUSTOM_AUDIENCE)
    add_role(root, "app2", ["app"], ["app-read"], mount=OTHER_MOUNT)
    return _seed_namespace(bao, signer)


def _seed_namespace(bao: OpenBao, signer: TokenSigner) -> bool:
    """The same layout inside namespace team1, where OpenBao supports namespaces."""
    import hvac.exceptions

    root = bao.client()
    try:
        root.write_data("sys/namespaces/team1", data={})
    except hvac.exceptions.VaultError:
        return False
    ns = bao.client(namespace="team1")
    ns.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    ns.secrets.kv.v2.create_or_update_secret(path="app", mount_point="secret",
                                             secret={"password": "team1-password"})
    enable_jwt_auth(ns, signer, AUTH_MOUNT)
    add_policy(ns, "app-read", {"secret/data/app": ["read"]})
    add_role(ns, "app", ["app"], ["app-read"])
    return True


@pytest.fixture(scope="session")
def vault() -> Iterator[Vault]:
    signer = TokenSigner()
    with openbao_server(with_tls=True) as bao:
        namespaces = _seed(bao, signer)
        yield Vault(bao, signer, namespaces)


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    # Short: a Unix socket path must fit in 108 bytes; pytest's tmp_path may not.
    path = Path(tempfile.mkdtemp(prefix="ps-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


ProviderFactory = Callable[..., RunningProvider]


@pytest.fixture
def make_provider(socket_dir: Path) -> Iterator[ProviderFactory]:
    """Start a provider with the given VaultSettings (stopped after the test)."""
    started: list[RunningProvider] = []

    def make(settings: VaultSettings | None = None, hmac_key: bytes = b"k" * 32,
             **server: Any) -> RunningProvider:
        sub = socket_dir / str(len(started))
        sub.mkdir()
        provider = RunningProvider(
            settings_for(sub, {"vault": settings or VaultSettings()}, **server),
            hmac_key=hmac_key,
        )
        provider.__enter__()
        started.append(provider)
        return provider

    yield make
    for provider in started:
        provider.stop()


@pytest.fixture
def provider(make_provider: ProviderFactory, vault: Vault) -> RunningProvider:
    return make_provider(VaultSettings(address=vault.address))


@pytest.fixture
def attrs(vault: Vault) -> Callable[..., dict[str, str]]:
    """Attributes of a pod (service account ``sa``) mounting ``params``."""

    def build(params: dict[str, str], *, sa: str = "app", namespace: str = "default",
              audience: str = "vault", token: str | None = None) -> dict[str, str]:
        jwt = token if token is not None else vault.signer.token(sa, namespace, audience=audience)
        return pod_attributes(params, namespace=namespace, service_account=sa,
                              tokens={audience: jwt})

    return build


def backend_of(provider: RunningProvider) -> Any:
    """The provider's live VaultBackend (to look at its token cache)."""
    return provider.run(provider.app.registry.get("vault"))


def cached_token(provider: RunningProvider, vault: Vault, *, sa: str = "app",
                 role: str | None = None) -> Any:
    """The Vault token the provider keeps for ``sa`` logging in as ``role`` (or None)."""
    from provider.backends.vault import VaultTls
    from provider.backends.vault.credentials import TokenKey

    key = TokenKey("default", sa, vault.address, "", AUTH_MOUNT, role or sa, "vault", VaultTls())
    return backend_of(provider).tokens.peek(key)
