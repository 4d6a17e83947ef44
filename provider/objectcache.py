"""The object cache: what makes rotation polls nearly free, without sharing across identities.

The driver re-sends every Mount of every pod on every rotation poll. Two
kinds of answers are kept:

* **Static values** (a KV secret, a Secrets Manager version, a Key Vault
  secret) are shared by every mount whose *identity key* and *object request*
  are equal, for the class's ``refreshInterval``. The identity key is
  everything that decides what the backend lets the caller read, always
  including the pod's namespace and service account; the object request is
  everything that changes the bytes. One read per (identity, object) per
  window, whatever the number of pods. A mount only gets here after its
  token's claims matched the request (provider.identity) and the identity's
  backend credential was found valid or obtained by a real login, so a hit
  is served only to a caller the backend would serve; a denial evicts all of
  that identity's entries.
* **Dynamic values** (a Vault lease, a PKI certificate) are never shared
  across pods: kept per pod UID + identity + request and served unchanged until
  2/3 of their lifetime, then issued again. Pods no longer seen drop out when
  their entry expires. Their single flight is not joined across pods either:
  a coalesced waiter that receives someone else's lease issues its own.

A provider restart empties both (nothing is persisted): the next mount of
each pod reads again, and dynamic secrets are issued again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from provider.cache import Cache, CacheSet
from provider.errors import DeadlineExceeded

if TYPE_CHECKING:
    from provider.backends.base import FetchContext

T = TypeVar("T")
# A dynamic value is issued again after this share of its lifetime.
DYNAMIC_FRACTION = 2 / 3


@dataclass(frozen=True)
class RefreshPolicy:
    """The provider's flags: the window when a class sets none, and the largest allowed."""

    default: float = 60.0
    maximum: float = 3600.0
    max_entries: int = 10_000
    max_bytes: int = 32 * 1024 * 1024

    def window(self, requested: float | None) -> float:
        chosen = self.default if requested is None else requested
        return max(0.0, min(chosen, self.maximum))


@dataclass(frozen=True, eq=False)
class _Stored(Generic[T]):
    value: T = field(repr=False)  # a secret: never in a repr
    size: int
    share_for: float  # seconds in the shared cache (0: not shared)
    renew_in: float | None  # dynamic: seconds until it is issued again


class ObjectCache:
    """The shared (static) and per-pod (dynamic) object caches of one provider."""

    def __init__(self, policy: RefreshPolicy, caches: CacheSet | None = None) -> None:
        self.policy = policy
        self.shared: Cache[tuple[Hashable, Hashable], _Stored[Any]] = Cache(
            "objects",
            max_entries=policy.max_entries,
            max_bytes=policy.max_bytes,
            expiry=lambda s: s.share_for,
            size_of=lambda s: s.size,
        )
        self.dynamic: Cache[tuple[str, Hashable, Hashable], _Stored[Any]] = Cache(
            "dynamic",
            max_entries=policy.max_entries,
            max_bytes=policy.max_bytes,
            size_of=lambda s: s.size,
        )
        if caches is not None:
            caches.add(self.shared)
            caches.add(self.dynamic)

    async def read(
        self,
        ctx: FetchContext,
        identity: Hashable,
        request: Hashable,
        load: Callable[[], Awaitable[T]],
        *,
        refresh: float | None,
        size: Callable[[T], int],
        lifetime: Callable[[T], float | None] | None,
        fresh: bool = False,
    ) -> T:
        pod = ctx.request.pod.uid
        if lifetime is not None and pod:
            found = self.dynamic.peek((pod, identity, request))
            if found is not None:
                value: T = found.value
                return value
        window = self.policy.window(refresh)
        if window <= 0 or fresh:
            # Straight to the backend, no flight to join (no closures either:
            # this is every object of a class with refreshInterval 0).
            value = await load()
            left = lifetime(value) if lifetime is not None else None
            if left is None:
                if window > 0:
                    # A read that had to reach the backend (it proves a new
                    # credential); what it read still serves the next mounts.
                    self.shared.put((identity, request), _Stored(value, size(value), window, None))
                return value  # refreshInterval 0: read every time, never stored
            renew_in = max(0.0, left) * DYNAMIC_FRACTION
            if pod and renew_in > 0:  # a lease or a certificate: this pod's, until renewed
                self.dynamic.put((pod, identity, request),
                                 _Stored(value, size(value), 0.0, renew_in), ttl=renew_in)
            return value
        mine = False

        async def fetch() -> _Stored[T]:
            nonlocal mine
            mine = True
            fetched = await load()
            left = lifetime(fetched) if lifetime is not None else None
            if left is not None:
                return _Stored(fetched, size(fetched), 0.0, max(0.0, left) * DYNAMIC_FRACTION)
            return _Stored(fetched, size(fetched), window, None)

        stored = await self._shared_read(ctx, (identity, request), fetch)
        if stored.renew_in is not None:
            if not mine:
                stored = await fetch()  # another pod's lease or certificate: issue our own
            if pod and stored.renew_in is not None and stored.renew_in > 0:
                self.dynamic.put((pod, identity, request), stored, ttl=stored.renew_in)
        result: T = stored.value
        return result

    async def _shared_read(
        self,
        ctx: FetchContext,
        key: tuple[Hashable, Hashable],
        fetch: Callable[[], Awaitable[_Stored[T]]],
    ) -> _Stored[T]:
        while True:
            mine = False

            def start() -> Awaitable[_Stored[T]]:
                nonlocal mine
                mine = True
                return fetch()

            try:
                return await self.shared.get(key, start, timeout=ctx.deadline.remaining())
            except TimeoutError:
                raise DeadlineExceeded(
                    "the object read did not finish before the mount deadline"
                ) from None
            except DeadlineExceeded:
                # Another mount's read ran out of that mount's time: read again
                # (a new flight) while this mount still has time.
                if mine or ctx.deadline.remaining() <= 0:
                    raise

    def forget_identity(self, identity: Hashable) -> int:
        """After a denial: nothing of that identity is served from memory any more."""
        return self.shared.invalidate_where(lambda k: k[0] == identity) + (
            self.dynamic.invalidate_where(lambda k: k[1] == identity)
        )

    def clear(self) -> None:
        self.shared.clear()
        self.dynamic.clear()
