"""The Azure dialect: SecretProviderClass parameters -> a validated, immutable plan.

Accepts what Azure/secrets-store-csi-driver-provider-azure accepts. This module
reads the class-level parameters (vault, cloud, how to be the pod,
refreshInterval); ``objects`` reads the ``objects`` array. Every problem is
reported at once; no network here. A plan holds no secret and nothing of the
pod, so the pipeline shares it between mounts of the class.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from provider.backends.azure import AzureSettings
from provider.backends.azure.objects import VAULT_NAME, AzureObject, parse_objects
from provider.dialect import parse_bool
from provider.durations import refresh_interval
from provider.errors import Problems

# The audience AKS workload identity federates on.
WORKLOAD_IDENTITY_AUDIENCE = "api://AzureADTokenExchange"
SP_CLIENT_ID = "clientid"
SP_CLIENT_SECRET = "clientsecret"  # noqa: S105 - a key name, not a secret


@dataclass(frozen=True)
class Cloud:
    name: str
    authority_host: str
    keyvault_dns_suffix: str


# cloudName values as go-autorest's EnvironmentFromName knows them (case-insensitive).
CLOUDS = {
    c.name.lower(): c
    for c in (
        Cloud("AzurePublicCloud", "https://login.microsoftonline.com/", "vault.azure.net"),
        Cloud(
            "AzureUSGovernmentCloud", "https://login.microsoftonline.us/", "vault.usgovcloudapi.net"
        ),
        Cloud("AzureChinaCloud", "https://login.chinacloudapi.cn/", "vault.azure.cn"),
        Cloud("AzureGermanCloud", "https://login.microsoftonline.de/", "vault.microsoftazure.de"),
    )
}


class AuthMode(Enum):
    WORKLOAD_IDENTITY = "workload-identity"
    SERVICE_PRINCIPAL = "service-principal"
    VM_MANAGED_IDENTITY = "vm-managed-identity"


@dataclass(frozen=True)
class Auth:
    """How to be the pod. Holds no secret: plans are shared between pods (plan cache)."""

    mode: AuthMode
    tenant_id: str
    # workload identity client, or user-assigned MI ("" = system-assigned);
    # a service principal's comes from each request's nodePublishSecretRef.
    client_id: str


@dataclass(frozen=True)
class ServicePrincipal:
    client_id: str
    secret: str = field(repr=False)

    def fingerprint(self, key: bytes) -> str:
        """A keyed digest of the secret: cache keys change when it rotates, never hold it."""
        return hmac.new(key or b"polysecret", self.secret.encode(), hashlib.sha256).hexdigest()[:16]


SP_MISSING = (
    "no identity to mount as: set 'clientID' (workload identity), or "
    "useVMManagedIdentity: \"true\", or reference a nodePublishSecretRef holding "
    f"the keys {SP_CLIENT_ID!r} and {SP_CLIENT_SECRET!r} (service principal)"
)


def service_principal(secrets: Mapping[str, str]) -> ServicePrincipal | None:
    """nodePublishSecretRef keys, matched case-insensitively (never the tokens key)."""
    folded = {k.lower(): v for k, v in secrets.items()}
    client_id = folded.get(SP_CLIENT_ID, "").strip()
    secret = folded.get(SP_CLIENT_SECRET, "").strip()
    return ServicePrincipal(client_id, secret) if client_id and secret else None


@dataclass(frozen=True)
class AzurePlan:
    vault_name: str
    cloud: Cloud
    auth: Auth
    objects: tuple[AzureObject, ...]
    # refreshInterval in seconds (None: the provider's default; see objectcache).
    refresh_interval: float | None = None


def _cloud(params: Mapping[str, str], problems: Problems) -> Cloud:
    raw = params.get("cloudName", "").strip()
    if not raw:
        return CLOUDS["azurepubliccloud"]
    found = CLOUDS.get(raw.lower())
    if found is None:
        problems.add(
            f"parameter 'cloudName': {raw[:40]!r} is not one of "
            f"{', '.join(c.name for c in CLOUDS.values())} (for a custom cloud such as "
            "AzureStackCloud set the provider flags --azure-authority-host and "
            "--azure-keyvault-dns-suffix)"
        )
        return CLOUDS["azurepubliccloud"]
    return found


def _auth(
    params: Mapping[str, str], secrets: Mapping[str, str] | None, problems: Problems
) -> Auth:
    if parse_bool(params, "usePodIdentity", problems):
        problems.add(
            "parameter 'usePodIdentity': AAD pod identity is deprecated and not supported; "
            "use workload identity (set 'clientID' and federate the service account) or "
            "useVMManagedIdentity"
        )
    # tenantID is the documented spelling; tenantId is what older classes use.
    tenant = params.get("tenantID", "").strip() or params.get("tenantId", "").strip()
    client_id = params.get("clientID", "").strip()
    use_vm = parse_bool(params, "useVMManagedIdentity", problems)
    # The Azure provider's order: an identity mode flag wins; workload identity
    # only when no mode is set (a class with both uses the VM's identity).
    if use_vm:
        mode = AuthMode.VM_MANAGED_IDENTITY
        client_id = params.get("userAssignedIdentityID", "").strip()
    elif client_id:
        mode = AuthMode.WORKLOAD_IDENTITY
    else:
        mode = AuthMode.SERVICE_PRINCIPAL
    if not tenant and mode is not AuthMode.VM_MANAGED_IDENTITY:
        problems.add("parameter 'tenantID' (or 'tenantId') is required: the Azure AD tenant")
    if mode is AuthMode.SERVICE_PRINCIPAL and secrets is not None and (
        service_principal(secrets) is None
    ):
        # Checked here to be reported with every other problem; read again per mount.
        problems.add(SP_MISSING)
    return Auth(mode, tenant, client_id)


def _vault_name(params: Mapping[str, str], problems: Problems) -> str:
    vault = params.get("keyvaultName", "").strip()
    if not vault:
        problems.add("parameter 'keyvaultName' is required")
    elif not VAULT_NAME.match(vault):
        problems.add(
            f"parameter 'keyvaultName': {vault[:40]!r} must be 3-24 characters of [-A-Za-z0-9]"
        )
    return vault


def parse_plan(
    params: Mapping[str, str],
    *,
    default_mode: int,
    settings: AzureSettings,
    secrets: Mapping[str, str] | None = None,
    max_objects: int = 1000,  # the provider's default --max-objects
) -> AzurePlan:
    """Validate the Azure dialect; raises InvalidParameters listing every problem.

    ``secrets`` (the mount's nodePublishSecretRef) are only checked for a
    service principal's keys, never kept: plans are shared between pods. None
    (an offline check with no request) skips that check.
    """
    problems = Problems()
    vault = _vault_name(params, problems)
    cloud = _cloud(params, problems)
    auth = _auth(params, secrets, problems)
    objects = parse_objects(params, default_mode, settings, problems, provider_max=max_objects)
    refresh = refresh_interval(params, problems)
    problems.raise_if_any()
    return AzurePlan(
        vault_name=vault, cloud=cloud, auth=auth, objects=objects, refresh_interval=refresh
    )
