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
from collections import OrderedDict
from collections.abc import Callable
from typing import Any


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


class IdentityEntry:
    """One identity's credential and the Key Vault clients made with it."""

    def __init__(self, credential: Any, assertion: Assertion | None) -> None:
        self.credential = credential
        self.assertion = assertion
        # False until a request succeeded: the credential has no access token yet.
        self.warm = False
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def client(self, kind: str, vault_url: str, make: Callable[[Any], Any]) -> Any:
        key = (kind, vault_url)
        with self._lock:
            found = self._clients.get(key)
            if found is None:
                found = make(self.credential)
                self._clients[key] = found
            return found




class IdentityCache:
    """LRU map from an identity key to its entry; ``make`` runs outside the lock."""

    def __init__(self, max_entries: int = 512) -> None:
        self._entries: OrderedDict[tuple[str, ...], IdentityEntry] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries
        self.created = 0  # credentials built (tests, benchmarks)

    def get(self, key: tuple[str, ...], make: Callable[[], IdentityEntry]) -> IdentityEntry:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                return found
        entry = make()  # builds objects only; no network
        with self._lock:
            found = self._entries.get(key)
            if found is not None:  # another mount won the race
                return found
            self.created += 1
            self._entries[key] = entry
            while len(self._entries) > self._max:
                # Dropped, not closed: the clients share the backend's transport
                # (closing one would close it for all) and a mount may still use it.
                self._entries.popitem(last=False)
        return entry

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
