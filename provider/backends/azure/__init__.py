"""Azure Key Vault backend: flags and settings (cheap); the SDK is imported by ``create``.

The Azure backend's imports (httptools, cryptography; azure-identity for a VM
managed identity only) cost memory, so nothing here imports them: a node that
only mounts AWS or Vault objects never pays for Azure.

Provider-level settings exist for sovereign and custom clouds (and for tests,
which point the provider at a local Key Vault and a local token endpoint):
the Azure AD authority host, the Key Vault DNS suffix or a whole endpoint
template, the CA bundle trusted for both, and the Key Vault API version.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from provider.errors import Problems

if TYPE_CHECKING:
    from provider.backends.azure.backend import AzureBackend
    from provider.backends.base import BackendServices

# What `pip install 'polysecret[azure]'` brings (provider.backends.installed).
# Each is imported only when a mount needs it (httptools: Key Vault and Azure
# AD's answers, parsed on the event loop by provider.backends.http1;
# cryptography: certificates and keys; azure-identity: a VM managed identity),
# so ``create`` checks they are all there.
SDK = ("httptools", "azure.identity", "cryptography")
# The dialect's marks, for the message when no backend claims a class.
DIALECT = "keyvaultName"

DEFAULT_ENDPOINT_TEMPLATE = "https://{vault}.{suffix}/"


@dataclass(frozen=True, kw_only=True)
class AzureSettings:
    # Azure AD authority host for every cloud (env AZURE_AUTHORITY_HOST).
    # Empty: the host of the SecretProviderClass's cloudName.
    authority_host: str = ""
    # Key Vault DNS suffix for every cloud (custom clouds). Empty: cloudName's.
    keyvault_dns_suffix: str = ""
    # Vault URL template with {vault} and {suffix} (a port, a private endpoint).
    keyvault_endpoint: str = DEFAULT_ENDPOINT_TEMPLATE
    # CA bundle (PEM) trusted for Key Vault and Azure AD TLS; empty: the
    # system's (requests also honours REQUESTS_CA_BUNDLE).
    ca_file: str = ""
    # Key Vault REST API version; empty: the SDK's default.
    api_version: str = ""
    # Key Vault's 401 challenge names the resource a token is for; the SDK
    # checks it matches the vault's domain (a token must not go elsewhere).
    # Only emulators whose challenge names another domain need this off.
    verify_challenge_resource: bool = True
    max_connections: int = 32
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    # The Azure provider's --construct-pem-chain (default true): order a PFX's
    # certificates by key identifiers; false keeps the PKCS#12's order.
    construct_pem_chain: bool = True
    # Its --write-cert-and-key-in-separate-files: <file>.crt and <file>.key too.
    separate_cert_and_key: bool = False

    def __post_init__(self) -> None:
        # azure-identity refuses a plain-http authority when a credential is
        # built, i.e. on every mount; say so once, at start-up.
        if self.authority_host and not self.authority_host.lower().startswith("https://"):
            raise ValueError(
                f"--azure-authority-host / AZURE_AUTHORITY_HOST {self.authority_host[:80]!r} "
                "must be an https:// URL (Azure AD tokens travel over TLS only)"
            )


def add_flags(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--azure-authority-host", default=None,
                       help="Azure AD authority host for all clouds (env AZURE_AUTHORITY_HOST; "
                            "default: the cloudName's, https://login.microsoftonline.com/ "
                            "for AzurePublicCloud)")
    group.add_argument("--azure-keyvault-dns-suffix", default=None,
                       help="Key Vault DNS suffix for all clouds (default: the cloudName's, "
                            "vault.azure.net for AzurePublicCloud)")
    group.add_argument("--azure-keyvault-endpoint", default=None,
                       help="vault URL template with {vault} and {suffix} "
                            f"(default {DEFAULT_ENDPOINT_TEMPLATE})")
    group.add_argument("--azure-ca-file", default=None,
                       help="PEM CA bundle trusted for Key Vault and Azure AD "
                            "(default: system CAs; REQUESTS_CA_BUNDLE is honoured)")
    group.add_argument("--azure-api-version", default=None,
                       help="Key Vault REST API version (default: the Key Vault SDKs' default)")
    group.add_argument("--azure-skip-challenge-resource-check", action="store_true",
                       default=False,
                       help="do not check that Key Vault's auth challenge names the vault's "
                            "domain (emulators only)")


def load_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> AzureSettings:
    return AzureSettings(
        authority_host=getattr(args, "azure_authority_host", None)
        or environ.get("AZURE_AUTHORITY_HOST", ""),
        keyvault_dns_suffix=getattr(args, "azure_keyvault_dns_suffix", None) or "",
        keyvault_endpoint=getattr(args, "azure_keyvault_endpoint", None)
        or DEFAULT_ENDPOINT_TEMPLATE,
        ca_file=getattr(args, "azure_ca_file", None) or "",
        api_version=getattr(args, "azure_api_version", None) or "",
        verify_challenge_resource=not getattr(args, "azure_skip_challenge_resource_check", False),
        # The Azure provider's own flags (provider.peerflags; absent unless given).
        construct_pem_chain=getattr(args, "construct_pem_chain", True) is not False,
        separate_cert_and_key=bool(getattr(args, "write_cert_and_key_in_separate_files", False)),
    )


def claims(attributes: Mapping[str, str], problems: Problems) -> bool:
    return "keyvaultName" in attributes


def create(settings: AzureSettings | None, services: BackendServices) -> AzureBackend:
    import importlib.util

    from provider.backends.azure.backend import AzureBackend

    # Found, not imported: a partly installed extra is no extra (the registry
    # says how to install it), though a mount of plain secrets would not notice.
    for module in SDK:
        if importlib.util.find_spec(module) is None:
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)

    return AzureBackend(settings or AzureSettings(), services)
