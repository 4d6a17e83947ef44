"""Vault tokens per pod identity: log in once, reuse until shortly before expiry.

The peer logs in on every mount; with rotation every two minutes and many
pods, that is most of Vault's load from the driver. We cache the Vault token
under everything that decides what it may do: the pod's namespace and service
account, and the Vault address, namespace, auth mount, role, audience and TLS
settings. A token is never used for another service account. Only the driver
can reach our socket, and kubelet fills in the pod's identity, so the identity
in the request is trusted as the key.

Before 2/3 of the token's TTL has passed it is re-acquired with the pod's fresh
service-account token (every mount brings one), rather than renewed: a renewal
would extend a token whose login the role may no longer allow. On a 403 the
caller invalidates the entry (only if it still holds the token that failed)
and logs in once more.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from provider.backends.vault import VaultTls

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
    # Monotonic time after which the token is re-acquired (inf: no expiry).
    refresh_at: float
    lease_seconds: int


def token_from_login(answer: Any, now: float) -> VaultToken | None:
    """The token of a login response, or None if the answer has none."""
    auth = answer.get("auth") if isinstance(answer, dict) else None
    if not isinstance(auth, dict) or not auth.get("client_token"):
        return None
    lease = int(auth.get("lease_duration") or 0)
    refresh_at = now + lease * REFRESH_FRACTION if lease > 0 else float("inf")
    return VaultToken(str(auth["client_token"]), refresh_at, lease)


class TokenCache:
    """LRU of Vault tokens; one login at a time per key (no thundering herd)."""

    def __init__(self, max_entries: int = 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: OrderedDict[TokenKey, VaultToken] = OrderedDict()
        self._login_locks: dict[TokenKey, threading.Lock] = {}
        self._lock = threading.Lock()
        self._max = max_entries
        self.clock = clock
        self.logins = 0  # successful logins (tests, benchmarks)

    def fresh(self, key: TokenKey) -> VaultToken | None:
        """The cached token for ``key`` if it is still fresh; never logs in."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None and found.refresh_at > self.clock():
                self._entries.move_to_end(key)
                return found
            return None

    def get(self, key: TokenKey, login: Callable[[], VaultToken]) -> VaultToken:
        """The cached token for ``key``, logging in with ``login`` when there is none."""
        found = self.fresh(key)
        if found is not None:
            return found
        with self._lock:
            key_lock = self._login_locks.setdefault(key, threading.Lock())
        with key_lock:
            # Another mount of the same identity may have logged in meanwhile.
            found = self.fresh(key)
            if found is not None:
                return found
            token = login()
            with self._lock:
                self.logins += 1
                self._entries[key] = token
                self._entries.move_to_end(key)
                while len(self._entries) > self._max:
                    old, _ = self._entries.popitem(last=False)
                    self._login_locks.pop(old, None)
            return token

    def invalidate(self, key: TokenKey, token: VaultToken) -> None:
        """Forget ``token`` (if it is still the cached one: a newer login stays)."""
        with self._lock:
            if self._entries.get(key) is token:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._login_locks.clear()
