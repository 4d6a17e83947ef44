"""Vault tokens per pod identity: log in as the pod once, reuse until shortly before expiry.

The peer logs in on every mount; with rotation every two minutes and many
pods, that is most of Vault's load from the driver. We cache the Vault token
under everything that decides what it may do: the pod's namespace and service
account, and the Vault address, namespace, auth mount, role, audience and TLS
settings. A token is never used for another service account: the pod's
service-account token must name the service account of the request before a
cached Vault token is used or a new one stored (provider.identity).

Before 2/3 of the token's TTL has passed it is re-acquired with the pod's fresh
service-account token (every mount brings one), rather than renewed: a renewal
would extend a token whose login the role may no longer allow. On a 403 the
caller invalidates the entry (only if it still holds the token that failed)
and logs in once more.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from provider.backends.jsonanswer import UnusableAnswer
from provider.backends.vault import VaultTls
from provider.backends.vault.errors import NoToken
from provider.backends.vault.transport import VaultTransport
from provider.cache import Cache

log = logging.getLogger("provider.backends.vault.backend")

REFRESH_FRACTION = 2 / 3


@dataclass(frozen=True)
class TokenKey:
    pod_namespace: str
    service_account: str
    address: str
    vault_namespace: str
    auth_mount: str
    role: str
    audience: str
    tls: VaultTls


@dataclass(frozen=True)
class VaultToken:
    token: str = field(repr=False)
    # The token's TTL (0: no expiry); it is re-acquired after 2/3 of it.
    lease_seconds: int

    @property
    def keep_for(self) -> float:
        """Seconds to reuse this token from the login on."""
        return self.lease_seconds * REFRESH_FRACTION if self.lease_seconds > 0 else float("inf")


def token_from_login(answer: object) -> VaultToken | None:
    """The token of a login response, or None if the answer has none."""
    auth = answer.get("auth") if isinstance(answer, dict) else None
    if not isinstance(auth, dict) or not auth.get("client_token"):
        return None
    return VaultToken(str(auth["client_token"]), int(auth.get("lease_duration") or 0))


async def login(transport: VaultTransport, auth_mount: str, role: str, jwt: str) -> VaultToken:
    """Log in with the pod's service-account token (kubernetes and jwt auth alike).

    Runs inside ``ctx.call_async`` (operation ``errors.LOGIN``): what Vault refuses
    is translated there, and so are an answer without an ``auth`` object (not
    Vault's: retried) and one whose ``auth`` holds no token (a refusal).
    """
    answer = await transport.request(
        "POST", f"auth/{auth_mount}/login", body={"role": role, "jwt": jwt}
    )
    if answer is None or not isinstance(answer.get("auth"), dict):
        raise UnusableAnswer("to the login has no 'auth' object")
    found = token_from_login(answer)
    if found is None:
        raise NoToken
    log.debug("vault login", extra={"role": role, "ttl": found.lease_seconds})
    return found


# Tokens kept: one per identity (service account x Vault role and connection).
MAX_TOKENS = 1024


def token_cache(
    max_entries: int = MAX_TOKENS, clock: Callable[[], float] = time.monotonic
) -> Cache[TokenKey, VaultToken]:
    """Vault tokens by identity, each until 2/3 of its TTL (single-flight logins)."""
    return Cache(
        "vault.tokens",
        max_entries=max_entries,
        clock=clock,
        expiry=lambda t: t.keep_for,
    )
