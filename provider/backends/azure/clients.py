"""Key Vault reads over the shared pools, on the event loop, with the SDKs' challenge handshake.

A Key Vault SDK client runs each GET through azure-core's pipeline (13
policies, a generated operation, models): 1.3-1.8 ms of CPU per GET here, and
still 0.7-1.5 with only the two policies that matter, against 0.13 for a read
here with its JSON and rendering, over ``provider.backends.http1`` on the loop
(0.25 over urllib3 before; bench/azure_get.py). A mount's reads are three GETs and two listings
of a stable REST API, so they are sent here directly (``transport.Pools``,
every step awaited: no thread), with what the SDK's pipeline did that matters:

* the bearer challenge (``challenge``): the first request to a vault goes
  without a token, the 401 names the scope and tenant, and the request is sent
  again with a token for them; a second 401 ends it (AuthFailed), as the SDK's
  policy does. A challenge naming another domain gets no token
  (``ChallengeMismatch``, ProviderMisconfigured);
* the SDK's user agent (Key Vault's logs see the same as before), with
  AZURE_HTTP_USER_AGENT appended as azure-core appends it;
* the API version the SDKs default to (``--azure-api-version`` overrides it).

Left out, as before: retries (``FetchContext.call_async`` retries inside the mount
deadline and honours Retry-After), redirects (a 3xx is an error, never a token
sent elsewhere), request ids, logging and tracing. Answers are JSON objects
checked by ``answers``; a status other than 200 raises ``errors.AzureStatus``.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import urllib.parse
from collections.abc import AsyncGenerator
from typing import Any, Protocol

from provider.backends.azure import challenge
from provider.backends.azure.challenge import Challenge, ChallengeMismatch, Challenges
from provider.backends.azure.errors import AzureStatus, InsecureVault
from provider.backends.azure.objects import ObjectType
from provider.backends.azure.transport import Answer, Pools
from provider.backends.jsonanswer import json_object

# Per kind: the REST collection, the SDK package whose user agent is sent, and
# the API version that package's clients default to (azure-keyvault-secrets
# 4.12, -keys 4.11, -certificates 4.12).
_KINDS = {
    ObjectType.SECRET: ("secrets", "azure-keyvault-secrets", "2026-04-01"),
    ObjectType.KEY: ("keys", "azure-keyvault-keys", "2025-07-01"),
    ObjectType.CERT: ("certificates", "azure-keyvault-certificates", "2026-04-01"),
}
# A JSON object of Key Vault's answer (a bundle, a list item).
Json = dict[str, Any]


class TokenSource(Protocol):
    """An identity's access tokens (``credentials``): cached, asked per request."""

    async def token(self, scope: str, tenant: str | None, claims: str | None = None) -> str:
        ...


@functools.cache
def user_agent(package: str) -> str:
    """azure-core's user agent for ``package`` (its installed version), read once."""
    try:
        moniker = f"{package.removeprefix('azure-')}/{importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:
        moniker = package.removeprefix("azure-")
    agent = f"azsdk-python-{moniker} Python/{platform.python_version()} ({platform.platform()})"
    if extra := os.environ.get("AZURE_HTTP_USER_AGENT"):
        agent = f"{agent} {extra}"
    return agent


class ForeignLink(Exception):
    """A list page's nextLink points outside the vault (answers.py names the object)."""


class VaultClient:
    """Reads of one kind (secrets, keys or certificates) from one vault, as one identity."""

    def __init__(
        self,
        kind: ObjectType,
        vault_url: str,
        tokens: TokenSource,
        *,
        pools: Pools,
        challenges: Challenges,
        verify_challenge_resource: bool,
        api_version: str = "",
    ) -> None:
        self._collection, package, default_version = _KINDS[kind]
        self._api_version = api_version or default_version
        self._tokens = tokens
        self._pools = pools
        self._challenges = challenges
        self._verify = verify_challenge_resource
        self._base = vault_url.rstrip("/")
        self._origin = challenge.origin(self._base)
        self._headers = {"Accept": "application/json", "User-Agent": user_agent(package)}

    async def get(self, name: str, version: str = "") -> Json:
        """The bundle of ``name`` (its current version unless ``version``): one GET."""
        quoted = urllib.parse.quote(name, safe="")
        path = f"/{self._collection}/{quoted}/{urllib.parse.quote(version)}"
        return await self._json(self._url(path))

    def versions(self, name: str) -> AsyncGenerator[Json, None]:
        """Every version's item of ``name`` (ids and attributes, no values), page by page."""
        quoted = urllib.parse.quote(name, safe="")
        return self._items(self._url(f"/{self._collection}/{quoted}/versions"))

    def items(self) -> AsyncGenerator[Json, None]:
        """Every object's item of this kind in the vault (current versions, no values)."""
        return self._items(self._url(f"/{self._collection}"))

    def _url(self, path: str) -> str:
        return f"{self._base}{path}?api-version={self._api_version}"

    async def _items(self, url: str | None) -> AsyncGenerator[Json, None]:
        while url:
            page = await self._json(url)
            for item in page["value"]:
                yield item
            url = page.get("nextLink")
            if url and challenge.origin(url) != self._origin:
                # The bearer token must not follow a link to another host.
                raise ForeignLink(url)

    async def _json(self, url: str) -> Json:
        answer = await self._send(url)
        if answer.status != 200:
            raise AzureStatus.of("Key Vault", answer)
        return json_object(answer.body)

    # -- the challenge handshake ----------------------------------------------

    async def _send(self, url: str) -> Answer:
        known = self._challenges.get(self._origin)
        if known is None:
            # No token yet for this vault: ask without one; the 401 says which.
            answer = await self._get(url, None)
        else:
            answer = await self._get(url, await self._token(url, known))
        if answer.status == 401:
            return await self._on_challenge(url, answer, known)
        return answer

    async def _on_challenge(self, url: str, answer: Answer, previous: Challenge | None) -> Answer:
        """One answer to a 401: a token for what it asks, the request again; then it stands."""
        found = challenge.parse(answer.headers.get("www-authenticate"))
        if found is None:
            self._challenges.forget(self._origin)
            return answer  # no usable challenge: the 401 is the answer (AuthFailed)
        if found.claims and previous is not None:
            # A claims challenge (CAE) names no resource: the vault's scope stands.
            found = Challenge(previous.scope, previous.tenant, found.claims)
        self._challenges.remember(self._origin, Challenge(found.scope, found.tenant))
        answer = await self._get(url, await self._token(url, found))
        if answer.status == 401:
            self._challenges.forget(self._origin)
        return answer

    async def _token(self, url: str, asked: Challenge) -> str:
        if not url.lower().startswith("https://"):
            raise InsecureVault(url)
        if self._verify:
            try:
                challenge.check_resource(asked, url)
            except ChallengeMismatch:
                self._challenges.forget(self._origin)
                raise
        # An ADFS authority takes no tenant (the SDK's rule).
        tenant = asked.tenant
        if tenant and tenant.lower().endswith("adfs"):
            tenant = None
        return await self._tokens.token(asked.scope, tenant, asked.claims)

    async def _get(self, url: str, token: str | None) -> Answer:
        headers = self._headers
        if token is not None:
            headers = {**headers, "Authorization": f"Bearer {token}"}
        return await self._pools.send("GET", url, headers)
