"""Key Vault clients of the same SDK with a lean pipeline: only the policies a read needs.

A Key Vault client's default pipeline runs 13 policies per request (request id,
headers, user agent, proxy, content decoding, redirects, retries, the auth
challenge, a custom hook, network trace logging, distributed tracing, header
cleanup, HTTP logging). Here each of them is either done elsewhere or not
wanted, so a client is built with azure-core's documented ``policies=``
argument and two policies:

* ``UserAgentPolicy``: Key Vault's logs see the same SDK user agent as before;
* the package's ``ChallengeAuthPolicy``: the 401 bearer challenge, the token
  for the vault's resource, and the check that the challenge names the vault's
  domain (``--azure-skip-challenge-resource-check`` turns that check off).

Left out, and why: retries (``FetchContext.call`` retries inside the mount
deadline and honours Retry-After), redirects and the header clean-up that
guards them (Key Vault does not redirect; requests is told not to follow, so a
3xx is an error, never a bearer token sent to another host), proxies (the
shared session reads them once per host: provider.backends.httpsession),
request ids (``uuid1`` per request; Key Vault answers its own
``x-ms-request-id``), content decoding (the generated operations parse the JSON
body themselves), logging and tracing (``base.py`` logs each request by name;
no tracer is configured, and ``quiet_tracing`` says so once). Issue 16:
bench/cost.py measures the difference.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any, cast

from azure.core.pipeline.policies import UserAgentPolicy

from provider.backends.azure.objects import ObjectType

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.pipeline.transport import RequestsTransport
    from azure.keyvault.certificates import CertificateClient
    from azure.keyvault.keys import KeyClient
    from azure.keyvault.secrets import SecretClient

    # A Key Vault client of one of the three kinds (one per identity, vault and kind).
    KvClient = SecretClient | KeyClient | CertificateClient


# Per kind: the SDK package, its client class, and its user-agent moniker.
_PACKAGES = {
    ObjectType.SECRET: ("azure.keyvault.secrets", "SecretClient", "keyvault-secrets"),
    ObjectType.KEY: ("azure.keyvault.keys", "KeyClient", "keyvault-keys"),
    ObjectType.CERT: ("azure.keyvault.certificates", "CertificateClient", "keyvault-certificates"),
}


def quiet_tracing() -> None:
    """Tell azure-core that tracing is off, once for the process.

    Left unset, each traced SDK method (two per GET) looks up
    AZURE_TRACING_ENABLED and AZURE_SDK_TRACING_IMPLEMENTATION in os.environ to
    find out; the provider configures no tracer, so the answer is always no.
    """
    from azure.core.settings import settings

    settings.tracing_enabled = False


def make_client(
    kind: ObjectType,
    vault_url: str,
    credential: TokenCredential,
    *,
    transport: RequestsTransport,
    verify_challenge_resource: bool,
    api_version: str = "",
) -> KvClient:
    """A client of ``kind`` for ``vault_url``; its SDK package is imported on first use
    (each costs ~2 MiB of RSS, and most classes mount secrets only)."""
    name, client_class, moniker = _PACKAGES[kind]
    package = importlib.import_module(name)
    # Each package carries its own copy of the challenge policy (its _shared).
    challenge = importlib.import_module(f"{name}._shared").ChallengeAuthPolicy(
        credential, verify_challenge_resource=verify_challenge_resource
    )
    # AZURE_HTTP_USER_AGENT is read once here, not from os.environ on every request.
    agent = UserAgentPolicy(
        sdk_moniker=f"{moniker}/{package.__version__}", user_agent_use_env=False
    )
    if extra := os.environ.get("AZURE_HTTP_USER_AGENT"):
        agent.add_user_agent(extra)
    policies = [agent, challenge]
    kw: dict[str, Any] = {"transport": transport, "policies": policies}
    if api_version:
        kw["api_version"] = api_version
    return cast("KvClient", getattr(package, client_class)(vault_url, credential, **kw))
