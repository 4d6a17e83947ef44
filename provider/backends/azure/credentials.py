"""Azure credentials as the pod, and the Key Vault clients built on them, cached per identity.

Three ways to be the pod (parameters.md, "Azure dialect"):

* workload identity: ``ClientAssertionCredential`` whose assertion is the
  pod's service-account token for ``api://AzureADTokenExchange``;
* service principal: ``ClientSecretCredential`` from nodePublishSecretRef;
* VM managed identity: ``ManagedIdentityCredential`` (system or user-assigned).

The Azure provider builds a fresh credential and Key Vault client per object
per mount: a token request, a TLS handshake and a 401 challenge every time.
Here an entry keeps one credential (which caches its access token until near
expiry) and one client per vault and kind. The key always starts with the
pod's namespace and service account and includes tenant and client id (and a
keyed digest of an SP secret, never the secret), so nothing is ever shared
across identities.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from provider.cache import Cache


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
# Clients share the backend's one HTTP transport, so dropping one closes
# nothing that another still uses.
MAX_IDENTITIES = 512
MAX_CLIENTS_PER_IDENTITY = 8


class IdentityEntry:
    """One identity's credential and the Key Vault clients made with it."""

    def __init__(self, credential: Any, assertion: Assertion | None) -> None:
        self.credential = credential
        self.assertion = assertion
        # False until a read with the credential succeeded: until then no cached
        # object is served on its behalf (backend.fetch).
        self.warm = False
        self._clients: Cache[tuple[str, str], Any] = Cache(
            "azure.clients", max_entries=MAX_CLIENTS_PER_IDENTITY
        )
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"IdentityEntry(warm={self.warm}, clients={len(self._clients)})"

    def client(self, kind: str, vault_url: str, make: Callable[[Any], Any]) -> Any:
        key = (kind, vault_url)
        with self._lock:
            found = self._clients.peek(key)
            if found is None:
                found = self._clients.put(key, make(self.credential))
            return found


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
