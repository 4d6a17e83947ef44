"""Key Vault reads on azure-core's pipeline, with the SDK's own challenge auth and nothing else.

A Key Vault SDK client runs each GET through 13 pipeline policies, a generated
operation (request builder, serializer, two tracing decorators, an API-version
check) and generated models, then the SDK's own models: 1.4 ms of CPU per GET
here, against 0.2 for the HTTP exchange itself (bench/azure_get.py). The reads
a mount makes are three GETs and two listings of a stable REST API, so they are
sent here on an azure-core ``PipelineClient`` (the SDK's HTTP layer: the shared
requests transport, its exceptions) with two policies:

* ``UserAgentPolicy``: Key Vault's logs see the SDK's user agent, as before;
* the Key Vault package's ``ChallengeAuthPolicy``: the 401 bearer challenge,
  the token for the vault's resource, and the check that the challenge names
  the vault's domain (``--azure-skip-challenge-resource-check`` turns it off).

Left out, and why: retries (``FetchContext.call`` retries inside the mount
deadline and honours Retry-After), redirects and the header clean-up that
guards them (Key Vault does not redirect; requests is told not to follow, so a
3xx is an error, never a bearer token sent to another host), proxies (the
shared session reads them once per host: provider.backends.httpsession),
request ids (``uuid1`` per request; Key Vault answers its own
``x-ms-request-id``), content decoding, logging and tracing (``base.py`` logs
each request by name; no tracer is configured). An answer is JSON read by the
backend (``backend``), which checks every field it uses. Errors are the ones
the SDK raises for the same answers (``map_error``, ``HttpResponseError``), so
``errors.translate`` maps them as before.
"""

from __future__ import annotations

import importlib
import os
import urllib.parse
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from azure.core import PipelineClient
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ResourceNotModifiedError,
    map_error,
)
from azure.core.pipeline.policies import UserAgentPolicy
from azure.core.rest import HttpRequest

from provider.backends.azure.objects import ObjectType

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.pipeline.transport import RequestsTransport

# Per kind: the SDK package (its challenge policy and default API version), the
# REST collection, and the user-agent moniker.
_PACKAGES = {
    ObjectType.SECRET: ("azure.keyvault.secrets", "secrets", "keyvault-secrets"),
    ObjectType.KEY: ("azure.keyvault.keys", "keys", "keyvault-keys"),
    ObjectType.CERT: ("azure.keyvault.certificates", "certificates", "keyvault-certificates"),
}
# The SDK's error classes for these statuses, as its generated operations map them.
_ERRORS = {
    401: ClientAuthenticationError,
    404: ResourceNotFoundError,
    409: ResourceExistsError,
    304: ResourceNotModifiedError,
}
# A JSON object of Key Vault's answer (a bundle, a list item).
Json = dict[str, Any]


def quiet_tracing() -> None:
    """Tell azure-core that tracing is off, once for the process.

    Left unset, azure-core looks up AZURE_TRACING_ENABLED and
    AZURE_SDK_TRACING_IMPLEMENTATION in os.environ wherever it traces (the
    credentials' token requests); the provider configures no tracer.
    """
    from azure.core.settings import settings

    settings.tracing_enabled = False


class ForeignLink(Exception):
    """A list page's nextLink points outside the vault (answers.py names the object)."""


class VaultClient:
    """Reads of one kind (secrets, keys or certificates) from one vault, as one identity."""

    def __init__(
        self,
        kind: ObjectType,
        vault_url: str,
        credential: TokenCredential,
        *,
        transport: RequestsTransport,
        verify_challenge_resource: bool,
        api_version: str = "",
    ) -> None:
        name, self._collection, moniker = _PACKAGES[kind]
        # The package is imported on first use of its kind (each costs ~2 MiB of
        # RSS, and most classes mount secrets only); its _shared module holds
        # the challenge policy and the API version its clients default to.
        package = importlib.import_module(name)
        shared = importlib.import_module(f"{name}._shared")
        self._api_version = api_version or str(
            importlib.import_module(f"{name}._shared.client_base").DEFAULT_VERSION.value
        )
        # AZURE_HTTP_USER_AGENT is read once here, not from os.environ per request.
        agent = UserAgentPolicy(
            sdk_moniker=f"{moniker}/{package.__version__}", user_agent_use_env=False
        )
        if extra := os.environ.get("AZURE_HTTP_USER_AGENT"):
            agent.add_user_agent(extra)
        challenge = shared.ChallengeAuthPolicy(
            credential, verify_challenge_resource=verify_challenge_resource
        )
        self._base = vault_url.rstrip("/")
        self._origin = urllib.parse.urlsplit(self._base)[:2]
        self._client: PipelineClient[Any, Any] = PipelineClient(
            self._base, policies=[agent, challenge], transport=transport
        )

    def get(self, name: str, version: str = "") -> Json:
        """The bundle of ``name`` (its current version unless ``version``): one GET."""
        quoted = urllib.parse.quote(name, safe="")
        return self._json(self._url(f"/{self._collection}/{quoted}/{urllib.parse.quote(version)}"))

    def versions(self, name: str) -> Iterator[Json]:
        """Every version's item of ``name`` (ids and attributes, no values), page by page."""
        quoted = urllib.parse.quote(name, safe="")
        return self._items(self._url(f"/{self._collection}/{quoted}/versions"))

    def items(self) -> Iterator[Json]:
        """Every object's item of this kind in the vault (current versions, no values)."""
        return self._items(self._url(f"/{self._collection}"))

    def _url(self, path: str) -> str:
        return f"{self._base}{path}?api-version={self._api_version}"

    def _items(self, url: str | None) -> Iterator[Json]:
        while url:
            page = self._json(url)
            yield from page["value"]
            url = page.get("nextLink")
            if url and urllib.parse.urlsplit(url)[:2] != self._origin:
                # The bearer token must not follow a link to another host.
                raise ForeignLink(url)

    def _json(self, url: str) -> Json:
        response = self._client.send_request(
            HttpRequest("GET", url, headers={"Accept": "application/json"})
        )
        if response.status_code != 200:
            map_error(status_code=response.status_code, response=response, error_map=_ERRORS)
            raise HttpResponseError(response=response)
        answer: Json = response.json()
        return answer
