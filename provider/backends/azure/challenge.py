"""Key Vault's 401 bearer challenge: which token a vault wants, and whether to send it there.

A vault names the token it accepts in the ``WWW-Authenticate`` header of a
401: ``Bearer authorization="https://login.../<tenant>", resource="https://vault.azure.net"``
(or ``scope=``). As the Key Vault SDKs do, the first request to a vault goes
without a token, the challenge is parsed and remembered per vault origin
(shared by every identity: it holds no secret), and the request is sent again
with a token for that scope and tenant; later requests send the token at once.

Before a token goes to a vault, the challenge's resource must be the vault's
own domain (``myvault.vault.azure.net`` for ``vault.azure.net``): otherwise
the vault URL is misconfigured, and a token for Key Vault would go to a host
that is not one (``--azure-skip-challenge-resource-check`` turns the check off
for emulators). The parsing follows the SDK's ``HttpChallenge`` so the same
headers mean the same scope, tenant and claims.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import urlsplit

from provider.cache import Cache

# Vault origins whose challenge is kept (a class names any vault).
MAX_VAULTS = 1024


class ChallengeMismatch(Exception):
    """The challenge names a resource outside the vault's domain: no token is sent."""


@dataclass(frozen=True)
class Challenge:
    """What a vault's challenge asks for."""

    scope: str  # the token's scope, "<resource>/.default"
    tenant: str | None  # from the authorization URI; None: the credential's own
    claims: str | None = None  # a CAE claims challenge (JSON), or None


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, lower case, without the scheme's default port."""
    split = urlsplit(url)
    scheme = split.scheme.lower()
    host = (split.hostname or "").lower()
    port = split.port
    if port is None or (scheme, port) in (("https", 443), ("http", 80)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def parse(header: str | None) -> Challenge | None:
    """The challenge in a WWW-Authenticate value; None if it is not a usable one."""
    text = (header or "").strip()
    if " " not in text:
        return None
    parameters: dict[str, str] = {}
    claims: str | None = None
    for item in text.split(" ", 1)[1].split(","):
        if "claims=" in item:
            encoded = item[item.index("=") + 1:].strip(" \"'")
            try:
                claims = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
            except (binascii.Error, ValueError):
                continue
        else:
            parts = item.split("=")
            if len(parts) == 2 and (key := parts[0].strip(' "')):
                parameters[key] = parts[1].strip(' "')
    authorization = parameters.get("authorization_uri") or parameters.get("authorization")
    if not authorization:
        return None
    tenant = urlsplit(authorization).path.lstrip("/").split("/", 1)[0] or None
    scope = parameters.get("scope") or parameters.get("resource", "") + "/.default"
    return Challenge(scope, tenant, claims)


def check_resource(challenge: Challenge, url: str) -> None:
    """ChallengeMismatch unless the challenge's resource is ``url``'s domain (or above it)."""
    resource = urlsplit(challenge.scope).netloc.lower()
    if not resource:
        raise ChallengeMismatch("the challenge names no resource")
    host = urlsplit(url).netloc.lower()
    if host.endswith(f".{resource}"):
        return
    # With default ports dropped on both sides (a nextLink carries :443).
    if not origin(url).split("://", 1)[1].endswith("." + origin(f"https://{resource}")[8:]):
        raise ChallengeMismatch(f"the challenge names {resource!r}")


class Challenges:
    """Vault origin -> its last challenge, shared by every identity (bounded)."""

    def __init__(self, max_entries: int = MAX_VAULTS) -> None:
        self._known: Cache[str, Challenge] = Cache("azure.challenges", max_entries=max_entries)

    def get(self, vault_origin: str) -> Challenge | None:
        return self._known.peek(vault_origin)

    def remember(self, vault_origin: str, challenge: Challenge) -> None:
        self._known.put(vault_origin, challenge)

    def forget(self, vault_origin: str) -> None:
        self._known.invalidate(vault_origin)
