"""Access tokens per identity: kept until shortly before expiry, asked from Azure AD directly.

``Tokens`` keeps an identity's tokens per scope and tenant, as the Key Vault
SDK's challenge policy kept them: a token is asked for again when it is due
for refresh (its ``refresh_in``, or half its life for long ones, as msal
sets it) or expires within five minutes, or when a claims challenge asks for
a new one; one request at a time per identity (an ``asyncio.Lock``: the
requests are awaited on the event loop, and a request cancelled at its mount's
deadline lets the next mount ask).

``EntraTokens`` asks Azure AD itself for the two common ways to be a pod,
the client-credentials grant of the Microsoft identity platform:

* workload identity: ``client_assertion`` = the pod's service-account token
  (``client_assertion_type`` jwt-bearer), the newest kubelet gave;
* service principal: ``client_secret`` from the nodePublishSecretRef.

``POST {authority}/{tenant}/oauth2/v2.0/token`` over the shared pools on the
event loop (``transport``: the same connections as a mount's GETs when the
authority is their host), as msal sent it for azure-identity (no OpenID discovery round trip: the
endpoint's path is fixed by the platform), with the CAE capability ``CP1``
azure-identity announced, so tokens and claims challenges are as before.
msal, azure-identity, requests and azure-core are not imported for these
(~20 MiB and ~0.4 ms of CPU per token request); the VM managed identity still
uses azure-identity (``credentials``). The tokens and the assertion are never
in a message, a log record or a ``repr``.
"""

from __future__ import annotations

import asyncio
import json
import os
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from provider.backends.azure.clients import user_agent
from provider.backends.azure.errors import AZURE_AD, AzureStatus, NoToken, OtherTenant
from provider.backends.azure.transport import Pools
from provider.errors import InvalidParameters

# A token is asked for again this long before it expires (the SDK's challenge
# policy's margin), or once its refresh time passed.
REFRESH_MARGIN = 300.0
# Scopes x tenants kept per identity: one per cloud in practice.
MAX_TOKENS_PER_IDENTITY = 4
# msal's rule: a token living this long or more is refreshed at half its life.
LONG_LIVED = 7200
# azure-identity's check of a tenant id (it goes into the token endpoint's path).
_TENANT_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-.")
_JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True)
class Held:
    """One access token and when to ask again (``time.time()`` seconds)."""

    token: str = field(repr=False)
    expires_on: float
    refresh_on: float | None = None

    def due(self, now: float) -> bool:
        return bool(self.refresh_on and self.refresh_on <= now) or (
            self.expires_on - now < REFRESH_MARGIN
        )


class Tokens:
    """An identity's tokens per (scope, tenant); subclasses say how to get a new one."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str | None], Held] = {}
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(held={len(self._held)})"

    async def token(self, scope: str, tenant: str | None, claims: str | None = None) -> str:
        """A bearer token for ``scope`` in ``tenant`` (None: the identity's own)."""
        key = (scope, tenant)
        held = self._held.get(key)
        if held is not None and claims is None and not held.due(time.time()):
            return held.token  # the common case: no lock to take
        async with self._lock:
            held = self._held.get(key)  # another mount may have asked meanwhile
            if held is not None and claims is None and not held.due(time.time()):
                return held.token
            fresh = await self._fetch(scope, tenant, claims)
            if len(self._held) >= MAX_TOKENS_PER_IDENTITY:
                self._held.clear()
            self._held[key] = fresh
            return fresh.token

    async def _fetch(self, scope: str, tenant: str | None, claims: str | None) -> Held:
        raise NotImplementedError


def check_tenant(tenant: str) -> None:
    """InvalidParameters unless ``tenant`` could be a tenant id (azure-identity's rule)."""
    if not tenant or not set(tenant) <= _TENANT_CHARACTERS:
        raise InvalidParameters([
            "parameter 'tenantID': not a tenant id (letters, digits, '-' and '.' only)"
        ])


def with_capabilities(claims: str | None) -> str:
    """The ``claims`` form field: CAE's CP1 capability, merged into a claims challenge's."""
    merged: dict[str, object] = {}
    if claims:
        try:
            given = json.loads(claims)
        except ValueError:
            given = None
        if isinstance(given, dict):
            merged = given
    access = merged.get("access_token")
    if not isinstance(access, dict):
        access = merged["access_token"] = {}
    access["xms_cc"] = {"values": ["CP1"]}
    return json.dumps(merged, separators=(",", ":"))


class EntraTokens(Tokens):
    """Tokens of a workload identity (``assertion``) or a service principal (``secret``)."""

    def __init__(
        self, pools: Pools, authority: str, tenant: str, client_id: str, *,
        assertion: Callable[[], str] | None = None, secret: str | None = None,
    ) -> None:
        super().__init__()
        check_tenant(tenant)
        self._pools = pools
        self._authority = authority.rstrip("/")
        self._tenant = tenant
        self._client_id = client_id
        self._assertion = assertion
        self._secret = secret
        self._headers = {
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": user_agent("azure-identity"),
        }

    def _resolve(self, tenant: str | None) -> str:
        """The tenant to ask (azure-identity's rule: no other tenant unless allowed)."""
        if tenant is None or tenant == self._tenant:
            return self._tenant
        if os.environ.get("AZURE_IDENTITY_DISABLE_MULTITENANTAUTH"):
            return self._tenant
        raise OtherTenant(tenant)

    async def _fetch(self, scope: str, tenant: str | None, claims: str | None) -> Held:
        form = {
            "client_id": self._client_id,
            "grant_type": "client_credentials",
            "scope": scope,
            "claims": with_capabilities(claims),
        }
        if self._assertion is not None:
            form["client_assertion_type"] = _JWT_BEARER
            form["client_assertion"] = self._assertion()
        else:
            form["client_secret"] = self._secret or ""
        url = f"{self._authority}/{quote(self._resolve(tenant), safe='')}/oauth2/v2.0/token"
        now = time.time()
        answer = await self._pools.send("POST", url, self._headers, urlencode(form).encode())
        if answer.status != 200:
            raise AzureStatus.of(AZURE_AD, answer)
        try:
            body = json.loads(answer.body)
        except (ValueError, RecursionError):
            raise NoToken(answer.status) from None
        if not isinstance(body, dict):
            raise NoToken(answer.status)
        if isinstance(body.get("error"), str):
            raise AzureStatus.of(AZURE_AD, answer)
        return _held(body, now, answer.status)


def _seconds(value: object) -> float | None:
    """Azure AD's ``expires_in`` / ``refresh_in``: an int, or digits in a string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value.strip().isdigit():
        return float(value)
    return None


def _held(body: dict[str, object], now: float, status: int) -> Held:
    token = body.get("access_token")
    expires_in = _seconds(body.get("expires_in"))
    if not isinstance(token, str) or not token or expires_in is None:
        raise NoToken(status)  # neither a token nor an error: never quoted
    refresh_in = _seconds(body.get("refresh_in"))
    if refresh_in is None and expires_in >= LONG_LIVED:
        refresh_in = expires_in / 2
    return Held(token, now + expires_in, now + refresh_in if refresh_in is not None else None)
