"""Vault backend (HashiCorp Vault and OpenBao): flags and settings; ``create`` builds it.

Provider-level defaults for the Vault address, namespace, auth mount and TLS
come from the standard environment variables (``VAULT_*``, and OpenBao's
``BAO_*``), then from flags; the SecretProviderClass overrides both, field by
field (environment < flags < SecretProviderClass), as vault-csi-provider does.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from provider.errors import Problems

if TYPE_CHECKING:
    from provider.backends.base import Backend, BackendServices
    from provider.backends.vault.config import VaultPlan

# What `pip install 'polysecret[vault]'` brings (provider.backends.installed):
# Vault's JSON API is spoken directly, parsed by httptools (see http1, transport).
SDK = ("httptools",)
# The dialect's marks, for the message when no backend claims a class.
DIALECT = "roleName or vaultAddress"

DEFAULT_AUTH_MOUNT = "kubernetes"
DEFAULT_ADDRESS = "https://127.0.0.1:8200"  # vault-csi-provider's default


@dataclass(frozen=True, kw_only=True)
class VaultTls:
    """How to verify Vault (and identify to it). Paths are inside the provider pod."""

    ca_cert: str = ""
    ca_directory: str = ""
    server_name: str = ""
    client_cert: str = ""
    client_key: str = ""
    skip_verify: bool = False


@dataclass(frozen=True, kw_only=True)
class VaultSettings:
    address: str = DEFAULT_ADDRESS
    namespace: str = ""
    auth_mount: str = DEFAULT_AUTH_MOUNT
    tls: VaultTls = VaultTls()
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    max_connections: int = 32


_TRUE = {"1", "t", "true", "yes", "y", "on"}


def add_flags(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--vault-addr", default=None,
                       help="default Vault address (env VAULT_ADDR/BAO_ADDR; "
                       f"default {DEFAULT_ADDRESS})")
    group.add_argument("--vault-namespace", default=None,
                       help="default Vault namespace (env VAULT_NAMESPACE/BAO_NAMESPACE)")
    group.add_argument("--vault-mount", default=None,
                       help=f"default auth mount path (default {DEFAULT_AUTH_MOUNT!r})")
    group.add_argument("--vault-ca-cert", default=None, help="CA bundle file (env VAULT_CACERT)")
    group.add_argument("--vault-ca-directory", default=None,
                       help="directory of CA PEM files (env VAULT_CAPATH)")
    group.add_argument("--vault-tls-server-name", default=None,
                       help="TLS server name (SNI and verification; env VAULT_TLS_SERVER_NAME)")
    group.add_argument("--vault-client-cert", default=None,
                       help="client certificate for TLS (env VAULT_CLIENT_CERT)")
    group.add_argument("--vault-client-key", default=None,
                       help="client key for TLS (env VAULT_CLIENT_KEY)")
    group.add_argument("--vault-skip-tls-verify", default=None, action="store_const", const=True,
                       help="do not verify Vault's certificate (env VAULT_SKIP_VERIFY)")


def _env(environ: Mapping[str, str], name: str) -> str:
    # OpenBao reads BAO_*; Vault reads VAULT_*. Either works; VAULT_* wins.
    return environ.get(f"VAULT_{name}") or environ.get(f"BAO_{name}") or ""


def _pick(flag: object, env: str, default: str = "") -> str:
    return str(flag) if flag else (env or default)


def load_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> VaultSettings:
    """Environment < flags (the SecretProviderClass comes later, per mount)."""
    flag = vars(args)
    skip_flag = flag.get("vault_skip_tls_verify")
    skip = bool(skip_flag) if skip_flag is not None else (
        _env(environ, "SKIP_VERIFY").strip().lower() in _TRUE
    )
    tls = VaultTls(
        ca_cert=_pick(flag.get("vault_ca_cert"), _env(environ, "CACERT")),
        ca_directory=_pick(flag.get("vault_ca_directory"), _env(environ, "CAPATH")),
        server_name=_pick(flag.get("vault_tls_server_name"), _env(environ, "TLS_SERVER_NAME")),
        client_cert=_pick(flag.get("vault_client_cert"), _env(environ, "CLIENT_CERT")),
        client_key=_pick(flag.get("vault_client_key"), _env(environ, "CLIENT_KEY")),
        skip_verify=skip,
    )
    return VaultSettings(
        address=_pick(flag.get("vault_addr"), _env(environ, "ADDR"), DEFAULT_ADDRESS),
        namespace=_pick(flag.get("vault_namespace"), _env(environ, "NAMESPACE")),
        auth_mount=_pick(flag.get("vault_mount"), "", DEFAULT_AUTH_MOUNT),
        tls=tls,
    )


def claims(attributes: Mapping[str, str], problems: Problems) -> bool:
    return "roleName" in attributes or "vaultAddress" in attributes


def create(settings: VaultSettings | None, services: BackendServices) -> Backend[VaultPlan]:
    from provider.backends.vault.backend import VaultBackend

    return VaultBackend(settings or VaultSettings(), services)
