"""Azure credentials as the pod, and the Key Vault clients built on them, cached per identity.

Three ways to be the pod (parameters.md, "Azure dialect"):

* workload identity: a client assertion, the pod's service-account token for
  ``api://AzureADTokenExchange`` (``tokens.EntraTokens``);
* service principal: the client secret from nodePublishSecretRef (likewise);
* VM managed identity: azure-identity's ``ManagedIdentityCredential`` (system
  or user-assigned; IMDS and its variants are its job), imported only when a
  class uses it, with its tokens kept by ``SdkTokens``. Its token requests
  block (requests under azure-core), so they run on a thread
  (``SignIn.blocking``), never on the event loop the mounts share.

The Azure provider builds a fresh credential and Key Vault client per object
per mount: a token request, a TLS handshake and a 401 challenge every time.
Here an entry keeps one token source (which keeps its access tokens until near
expiry) and one client per vault and kind. The key always starts with the
pod's namespace and service account and includes tenant and client id (and a
keyed digest of an SP secret, never the secret), so nothing is ever shared
across identities.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from provider.backends.azure.config import (
    SP_MISSING,
    WORKLOAD_IDENTITY_AUDIENCE,
    AuthMode,
    AzurePlan,
    service_principal,
)
from provider.backends.azure.tokens import EntraTokens, Held, Tokens
from provider.backends.azure.transport import Pools
from provider.cache import Cache
from provider.errors import InvalidParameters
from provider.identity import verified_token
from provider.request import MountRequest

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.pipeline.transport import RequestsTransport

    from provider.backends.azure.clients import TokenSource

C = TypeVar("C")
T = TypeVar("T")
# Runs a blocking call off the event loop (on a thread) and awaits its result.
Blocking = Callable[[Callable[[], T]], Awaitable[T]]
# Identity cache key: the pod's identity first, then what the credential is for.
IdentityKey = tuple[str, ...]


def quiet_tracing() -> None:
    """Tell azure-core that tracing is off, once for the process.

    Left unset, azure-core looks up AZURE_TRACING_ENABLED and
    AZURE_SDK_TRACING_IMPLEMENTATION in os.environ wherever it traces (the
    credentials' token requests); the provider configures no tracer.
    """
    from azure.core.settings import settings

    settings.tracing_enabled = False


class Assertion:
    """The newest pod token of one identity; the credential reads it when it needs one.

    Kubelet hands a fresh token on every mount; the credential only asks when
    its access token is about to expire, and then gets the newest.
    """

    def __init__(self) -> None:
        self._token = ""

    def set(self, token: str) -> None:
        self._token = token

    def __call__(self) -> str:
        return self._token

    def __repr__(self) -> str:
        return "Assertion(<redacted>)"


# Identities kept, and Key Vault clients per identity (a class names any vault).
# Clients share the backend's pools (one per host), so dropping one closes
# nothing that another still uses.
MAX_IDENTITIES = 512
MAX_CLIENTS_PER_IDENTITY = 8


class SdkTokens(Tokens):
    """An azure-identity credential's tokens, kept as ``Tokens`` keeps them.

    ``enable_cae`` and the challenge's tenant and claims are passed as the Key
    Vault SDK's challenge policy passed them. The credential's request blocks:
    ``blocking`` runs it on a thread.
    """

    def __init__(self, credential: TokenCredential, blocking: Blocking[Held]) -> None:
        super().__init__()
        self.credential = credential
        self._blocking = blocking

    async def _fetch(self, scope: str, tenant: str | None, claims: str | None) -> Held:
        options: dict[str, Any] = {"enable_cae": True}
        if tenant:
            options["tenant_id"] = tenant
        if claims:
            options["claims"] = claims

        def fetch() -> Held:
            got = self.credential.get_token_info(  # type: ignore[attr-defined]
                scope, options=options
            )
            return Held(str(got.token), float(got.expires_on), got.refresh_on)

        return await self._blocking(fetch)


class IdentityEntry:
    """One identity's token source and the Key Vault clients made with it."""

    def __init__(self, tokens: TokenSource, assertion: Assertion | None) -> None:
        self.tokens = tokens
        self.assertion = assertion
        # False until a read with the credential succeeded: until then no cached
        # object is served on its behalf (backend.fetch).
        self.warm = False
        # Key Vault clients by (kind, vault URL): one of the SDK's three client classes.
        self._clients: Cache[tuple[str, str], Any] = Cache(
            "azure.clients", max_entries=MAX_CLIENTS_PER_IDENTITY
        )
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"IdentityEntry(warm={self.warm}, clients={len(self._clients)})"

    def client(self, kind: str, vault_url: str, make: Callable[[TokenSource], C]) -> C:
        """This identity's client of ``kind`` for ``vault_url``, made on first use."""
        key = (kind, vault_url)
        with self._lock:
            found = self._clients.peek(key)
            if found is None:
                found = self._clients.put(key, make(self.tokens))
            return cast("C", found)


class IdentityCache:
    """Identity key -> entry, bounded; ``make`` builds objects only (no network)."""

    def __init__(self, max_entries: int = MAX_IDENTITIES) -> None:
        self.entries: Cache[tuple[str, ...], IdentityEntry] = Cache(
            "azure.credentials", max_entries=max_entries
        )
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: tuple[str, ...], make: Callable[[], IdentityEntry]) -> IdentityEntry:
        found = self.entries.peek(key)
        if found is not None:
            return found
        with self._lock:  # one credential per identity, even when mounts race
            found = self.entries.peek(key)
            if found is None:
                found = self.entries.put(key, make())
            return found

    def clear(self) -> None:
        self.entries.clear()


@dataclass(frozen=True)
class SignIn:
    """How token sources are built: the authority, the pools, the digest key, the SDK's transport.

    ``sdk_transport`` and ``blocking`` serve only a VM managed identity
    (azure-identity's credential needs azure-core's transport, and blocks).
    """

    authority: str
    pools: Pools
    hmac_key: bytes
    sdk_transport: Callable[[], RequestsTransport]
    blocking: Blocking[Held]

    def identity(
        self, plan: AzurePlan, request: MountRequest, cache: IdentityCache
    ) -> tuple[IdentityKey, IdentityEntry]:
        """The pod's identity key and credential entry (builds objects only, no network)."""
        auth = plan.auth
        pod = request.pod
        if auth.mode is AuthMode.WORKLOAD_IDENTITY:
            token = verified_token(request, WORKLOAD_IDENTITY_AUDIENCE, parameter="clientID")
            key: IdentityKey = (
                *pod.identity, "workload-identity", self.authority, auth.tenant_id,
                auth.client_id,
            )
            entry = cache.get(key, lambda: self._workload_identity(auth.tenant_id, auth.client_id))
            assert entry.assertion is not None
            entry.assertion.set(token)  # the newest token kubelet gave this identity
            return key, entry
        if auth.mode is AuthMode.SERVICE_PRINCIPAL:
            sp = service_principal(request.secrets)
            if sp is None:
                raise InvalidParameters([SP_MISSING])
            key = (
                *pod.identity, "service-principal", self.authority, auth.tenant_id,
                sp.client_id, sp.fingerprint(self.hmac_key),
            )
            return key, cache.get(
                key, lambda: self._service_principal(auth.tenant_id, sp.client_id, sp.secret)
            )
        key = (*pod.identity, "vm-managed-identity", auth.client_id)
        return key, cache.get(key, lambda: self._managed_identity(auth.client_id))

    def _workload_identity(self, tenant: str, client_id: str) -> IdentityEntry:
        assertion = Assertion()
        tokens = EntraTokens(self.pools, self.authority, tenant, client_id, assertion=assertion)
        return IdentityEntry(tokens, assertion)

    def _service_principal(self, tenant: str, client_id: str, secret: str) -> IdentityEntry:
        tokens = EntraTokens(self.pools, self.authority, tenant, client_id, secret=secret)
        return IdentityEntry(tokens, None)

    def _managed_identity(self, client_id: str) -> IdentityEntry:
        from azure.identity import ManagedIdentityCredential

        credential = ManagedIdentityCredential(
            # retry_total=0: our retry loop is the one that knows the mount deadline.
            client_id=client_id or None, transport=self.sdk_transport(), retry_total=0
        )
        return IdentityEntry(SdkTokens(credential, self.blocking), None)


def describe(plan: AzurePlan, request: MountRequest) -> str:
    """Who the mount reads as, for error messages (names and ids, never a secret)."""
    auth = plan.auth
    if auth.mode is AuthMode.WORKLOAD_IDENTITY:
        return f"workload identity (clientID {auth.client_id!r}, tenant {auth.tenant_id!r})"
    if auth.mode is AuthMode.SERVICE_PRINCIPAL:
        sp = service_principal(request.secrets)
        client = sp.client_id if sp else ""
        return f"service principal (clientid {client!r}, tenant {auth.tenant_id!r})"
    which = f"user-assigned {auth.client_id!r}" if auth.client_id else "system-assigned"
    return f"VM managed identity ({which})"
