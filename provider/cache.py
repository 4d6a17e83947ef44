"""One cache primitive for the whole provider: bounded, expiring, single-flight.

Every cache the provider keeps (plans, credentials and tokens per identity,
Kubernetes reads, fetched objects) has the same needs: entries expire on their
own schedule (a token at 2/3 of its TTL, an object at the end of its refresh
window); memory is bounded in entries *and* bytes, because a SecretProviderClass
author controls what goes in; evicting an entry may have to release something
(a connection pool); and when fifty pods of one service account start at once,
one backend request serves them all.

Single flight is on the event loop, not on a thread lock. A thread lock held by
a stalled backend call locks every later caller out for as long as the call
hangs, and pins one worker thread per waiter. Here a waiter awaits the flight
only until its *own* deadline, and a flight whose starter's deadline has passed
is no longer joined: the next caller starts a fresh one, so an identity is never
locked out after the backend recovers.

Reads that need no waiting (``peek``, ``put``, ``invalidate``) are thread-safe
and never block on I/O, so a cache hit costs no thread hop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

log = logging.getLogger("provider.cache")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Lookup results, as metrics label them.
HIT = "hit"
MISS = "miss"
COALESCED = "coalesced"
EXPIRED = "expired"


class CacheObserver(Protocol):
    """Told about every lookup (metrics hook; never sees keys or values)."""

    def cache_lookup(self, cache: str, result: str) -> None: ...


@dataclass(frozen=True)
class CacheStats:
    """Counters and sizes of one cache, for tests, metrics and benchmarks."""

    entries: int
    bytes: int
    hits: int
    misses: int
    coalesced: int
    expired: int
    evictions: int
    loads: int


@dataclass
class _Entry(Generic[V]):
    value: V
    expires_at: float
    size: int

    def __repr__(self) -> str:  # values may be secrets or credentials
        return f"_Entry(expires_at={self.expires_at!r}, size={self.size})"


class _Flight(Generic[V]):
    """One load in progress and the callers waiting for it (each with its own future)."""

    __slots__ = ("deadline", "joinable", "task", "waiters")

    def __init__(self, deadline: float) -> None:
        # After this (the loop's clock) the flight is no longer joined: its starter gave up.
        self.deadline = deadline
        # False once the starter's own timer has fired, whatever the clock reads then.
        self.joinable = True
        self.waiters: list[asyncio.Future[V]] = []
        self.task: asyncio.Task[None] | None = None  # held here, so it is not collected


class Cache(Generic[K, V]):
    """An LRU with per-entry expiry, bounds on entries and bytes, single-flight loads.

    ``ttl`` is the default lifetime; ``expiry(value)`` may give one per value
    (seconds from now; ``<= 0`` means do not keep it). ``size_of`` measures a
    value for the byte bound; a value larger than the whole bound is returned
    but not kept. ``on_evict`` runs (outside the lock) for every entry that
    leaves the cache other than by ``put`` of the same key, so the owner can
    close what the value holds.
    """

    def __init__(
        self,
        name: str,
        *,
        max_entries: int,
        max_bytes: int | None = None,
        ttl: float = float("inf"),
        expiry: Callable[[V], float] | None = None,
        size_of: Callable[[V], int] | None = None,
        on_evict: Callable[[K, V], None] | None = None,
        observer: CacheObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.name = name
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._ttl = ttl
        self._expiry = expiry
        self._size_of = size_of
        self._on_evict = on_evict
        self._observer = observer
        self._clock = clock
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._flights: dict[K, _Flight[V]] = {}
        self._hits = self._misses = self._coalesced = 0
        self._expired = self._evictions = self._loads = 0

    def __repr__(self) -> str:
        return f"Cache({self.name!r}, entries={len(self)})"

    def __len__(self) -> int:
        return len(self._entries)

    def set_observer(self, observer: CacheObserver | None) -> None:
        self._observer = observer

    # -- non-blocking, thread-safe --------------------------------------------

    def peek(self, key: K) -> V | None:
        """The live value for ``key``, or None; counts a hit or an expiry, never a miss."""
        evicted: list[tuple[K, V]] = []
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.expires_at <= self._clock():
                self._drop(key, entry, evicted)
                self._expired += 1
                result = EXPIRED
                value = None
            else:
                self._entries.move_to_end(key)
                self._hits += 1
                result = HIT
                value = entry.value
        self._evicted(evicted)
        self._observe(result)
        return value

    def put(self, key: K, value: V, *, ttl: float | None = None) -> V:
        """Keep ``value`` for ``ttl`` seconds (default: ``expiry(value)`` or the cache's ttl)."""
        if ttl is None:
            ttl = self._expiry(value) if self._expiry is not None else self._ttl
        evicted: list[tuple[K, V]] = []
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.size
                if old.value is not value:
                    evicted.append((key, old.value))
            size = self._size_of(value) if self._size_of is not None else 0
            fits = self._max_bytes is None or size <= self._max_bytes
            if ttl > 0 and fits:
                self._entries[key] = _Entry(value, self._clock() + ttl, size)
                self._bytes += size
                self._shrink(evicted)
        self._evicted(evicted)
        return value

    def invalidate(self, key: K, value: V | None = None) -> bool:
        """Forget ``key`` (only if it still holds ``value``, when given: a newer entry stays)."""
        evicted: list[tuple[K, V]] = []
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or (value is not None and entry.value is not value):
                return False
            self._drop(key, entry, evicted)
        self._evicted(evicted)
        return True

    def invalidate_where(self, predicate: Callable[[K], bool]) -> int:
        """Forget every entry whose key matches (e.g. all of one identity after a denial)."""
        evicted: list[tuple[K, V]] = []
        with self._lock:
            for key in [k for k in self._entries if predicate(k)]:
                self._drop(key, self._entries[key], evicted)
        self._evicted(evicted)
        return len(evicted)

    def clear(self) -> None:
        """Forget everything (shutdown): owners get ``on_evict`` for each entry."""
        with self._lock:
            evicted = [(k, e.value) for k, e in self._entries.items()]
            self._entries.clear()
            self._bytes = 0
            self._evictions += len(evicted)
        self._evicted(evicted)

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                entries=len(self._entries),
                bytes=self._bytes,
                hits=self._hits,
                misses=self._misses,
                coalesced=self._coalesced,
                expired=self._expired,
                evictions=self._evictions,
                loads=self._loads,
            )

    # -- single flight, on the event loop -------------------------------------

    async def get(
        self,
        key: K,
        load: Callable[[], Awaitable[V]],
        *,
        timeout: float,
        ttl: float | None = None,
    ) -> V:
        """The cached value, or the result of one shared ``load()``.

        Waits at most ``timeout`` seconds (raises :class:`TimeoutError`); the
        load itself goes on for those still waiting on it, and is no longer
        joined once its starter's time is up. A failed load is not cached.
        """
        found = self.peek(key)
        if found is not None:
            return found
        loop = asyncio.get_running_loop()
        now = loop.time()
        flight = self._flights.get(key)
        starter = False
        # Joined until its starter's deadline, and never once the starter's
        # timer has fired: uvloop schedules timers from its clock as cached at
        # the start of the loop's iteration, so a timer can fire while the
        # clock still reads just before the deadline, and a caller arriving
        # then would join the flight its starter has just left.
        if flight is not None and flight.joinable and flight.deadline > now:
            with self._lock:
                self._coalesced += 1
            self._observe(COALESCED)
        else:
            with self._lock:
                self._misses += 1
            self._observe(MISS)
            flight = self._flights[key] = _Flight(now + timeout)
            flight.task = asyncio.ensure_future(self._load(key, load, ttl, flight))
            starter = True
        if timeout <= 0:
            raise TimeoutError
        # Each caller waits on a future of its own, answered by the load itself
        # and failed by its own timer: the load goes on for the others when
        # one leaves (what shield did), with two fewer loop rounds per lookup
        # than wait_for(shield(...)) (issue 16).
        waiter: asyncio.Future[V] = loop.create_future()
        flight.waiters.append(waiter)
        timer = loop.call_later(timeout, _time_out, waiter, flight if starter else None)
        try:
            return await waiter
        finally:
            timer.cancel()

    async def _load(
        self, key: K, load: Callable[[], Awaitable[V]], ttl: float | None, flight: _Flight[V]
    ) -> None:
        """Run ``load`` and answer every waiter; a failure is theirs (nothing is cached)."""
        try:
            value = await load()
            with self._lock:
                self._loads += 1
            value = self.put(key, value, ttl=ttl)
        except BaseException as exc:  # the waiters' to raise; a cancelled load is cancelled
            self._land(key, flight)
            for waiter in flight.waiters:
                if not waiter.done():  # done: its caller left (timeout or cancelled)
                    if isinstance(exc, asyncio.CancelledError):
                        waiter.cancel()
                    else:
                        waiter.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        self._land(key, flight)
        for waiter in flight.waiters:
            if not waiter.done():
                waiter.set_result(value)

    def _land(self, key: K, flight: _Flight[V]) -> None:
        """The flight is over: later callers find the value cached, or start a new one."""
        if self._flights.get(key) is flight:
            del self._flights[key]

    # -- internals (called with the lock held) --------------------------------

    def _drop(self, key: K, entry: _Entry[V], evicted: list[tuple[K, V]]) -> None:
        del self._entries[key]
        self._bytes -= entry.size
        self._evictions += 1
        evicted.append((key, entry.value))

    def _shrink(self, evicted: list[tuple[K, V]]) -> None:
        while self._entries and (
            len(self._entries) > self._max_entries
            or (self._max_bytes is not None and self._bytes > self._max_bytes)
        ):
            key, entry = next(iter(self._entries.items()))
            self._drop(key, entry, evicted)

    def _evicted(self, evicted: list[tuple[K, V]]) -> None:
        if self._on_evict is None:
            return
        for key, value in evicted:
            self._on_evict(key, value)

    def _observe(self, result: str) -> None:
        if self._observer is not None:
            self._observer.cache_lookup(self.name, result)
        if result != HIT and log.isEnabledFor(logging.DEBUG):
            # The cache's name and the result only: keys hold identities and names.
            log.debug("cache %s", result, extra={"cache": self.name})


def _time_out(waiter: asyncio.Future[Any], started: _Flight[Any] | None) -> None:
    if started is not None:
        started.joinable = False  # its starter's time is up: later callers start anew
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class CacheSet:
    """Every cache of one provider: observed by the metrics, cleared on shutdown.

    Backends are created lazily, so their caches join when they are built;
    the metrics read ``stats()`` of each at scrape time.
    """

    def __init__(self, observer: CacheObserver | None = None) -> None:
        self._caches: list[Cache[Any, Any]] = []
        self._lock = threading.Lock()
        self._observer = observer

    def set_observer(self, observer: CacheObserver | None) -> None:
        with self._lock:
            self._observer = observer
            for cache in self._caches:
                cache.set_observer(observer)

    def add(self, cache: Cache[K, V]) -> Cache[K, V]:
        with self._lock:
            cache.set_observer(self._observer)
            self._caches.append(cache)
        return cache

    def caches(self) -> list[Cache[Any, Any]]:
        with self._lock:
            return list(self._caches)

    def clear(self) -> None:
        """Forget every value (shutdown): nothing cached outlives the provider's work."""
        for cache in self.caches():
            cache.clear()
