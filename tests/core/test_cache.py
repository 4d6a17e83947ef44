"""The cache primitive: bounds, expiry, eviction hooks and single flight."""

from __future__ import annotations

import asyncio

import pytest

from provider.cache import COALESCED, EXPIRED, HIT, MISS, Cache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Seen:
    def __init__(self) -> None:
        self.results: list[tuple[str, str]] = []

    def cache_lookup(self, cache: str, result: str) -> None:
        self.results.append((cache, result))


def test_entries_expire_on_their_own_schedule() -> None:
    clock = Clock()
    cache: Cache[str, str] = Cache("t", max_entries=4, expiry=lambda v: float(len(v)), clock=clock)
    cache.put("short", "ab")
    cache.put("long", "abcdef")
    clock.now += 3
    assert cache.peek("short") is None
    assert cache.peek("long") == "abcdef"
    clock.now += 4
    assert cache.peek("long") is None
    assert len(cache) == 0
    assert cache.stats().expired == 2


def test_zero_ttl_is_not_kept() -> None:
    cache: Cache[str, str] = Cache("t", max_entries=4)
    assert cache.put("k", "v", ttl=0) == "v"
    assert cache.peek("k") is None and len(cache) == 0


def test_lru_bound_on_entries_evicts_least_recent_and_tells_owner() -> None:
    closed: list[tuple[str, str]] = []
    cache: Cache[str, str] = Cache("t", max_entries=2, on_evict=lambda k, v: closed.append((k, v)))
    cache.put("a", "1")
    cache.put("b", "2")
    assert cache.peek("a") == "1"  # a is now the most recent
    cache.put("c", "3")
    assert cache.peek("b") is None
    assert closed == [("b", "2")]
    assert {k for k in ("a", "c") if cache.peek(k)} == {"a", "c"}


def test_byte_bound_evicts_and_oversized_value_is_returned_not_kept() -> None:
    cache: Cache[str, bytes] = Cache("t", max_entries=100, max_bytes=10, size_of=len)
    cache.put("a", b"12345")
    cache.put("b", b"12345")
    cache.put("c", b"123")
    assert cache.peek("a") is None  # pushed out by bytes, not by count
    assert cache.stats().bytes == 8
    assert cache.put("huge", b"x" * 11) == b"x" * 11
    assert cache.peek("huge") is None
    assert cache.stats().bytes == 8


def test_replacing_a_value_evicts_the_old_one_but_not_the_same_one() -> None:
    closed: list[str] = []
    cache: Cache[str, object] = Cache("t", max_entries=2, on_evict=lambda k, v: closed.append(k))
    value = object()
    cache.put("k", value)
    cache.put("k", value)
    assert closed == []
    cache.put("k", object())
    assert closed == ["k"]


def test_invalidate_only_the_value_that_failed() -> None:
    cache: Cache[str, object] = Cache("t", max_entries=4)
    old, new = object(), object()
    cache.put("k", new)
    assert cache.invalidate("k", old) is False  # a newer login stays
    assert cache.peek("k") is new
    assert cache.invalidate("k", new) is True
    assert cache.peek("k") is None


def test_invalidate_where_and_clear_release_everything() -> None:
    closed: list[tuple[str, str]] = []
    cache: Cache[tuple[str, str], str] = Cache(
        "t", max_entries=8, on_evict=lambda k, v: closed.append(k)
    )
    for ns in ("a", "b"):
        for name in ("x", "y"):
            cache.put((ns, name), "v")
    assert cache.invalidate_where(lambda k: k[0] == "a") == 2
    assert len(cache) == 2
    cache.clear()
    assert len(cache) == 0 and len(closed) == 4


def test_repr_never_shows_values() -> None:
    cache: Cache[str, str] = Cache("creds", max_entries=2)
    cache.put("k", "s3cr3t-value")
    assert "s3cr3t" not in repr(cache)


def test_concurrent_gets_share_one_load() -> None:
    asyncio.run(_test_concurrent_gets_share_one_load())


async def _test_concurrent_gets_share_one_load() -> None:
    seen = Seen()
    cache: Cache[str, str] = Cache("t", max_entries=4, observer=seen)
    calls = 0

    async def load() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return "v"

    got = await asyncio.gather(*(cache.get("k", load, timeout=5) for _ in range(20)))
    assert got == ["v"] * 20 and calls == 1
    assert await cache.get("k", load, timeout=5) == "v" and calls == 1
    results = [r for _, r in seen.results]
    assert results.count(MISS) == 1 and results.count(COALESCED) == 19 and results.count(HIT) == 1
    stats = cache.stats()
    assert (stats.loads, stats.misses, stats.coalesced, stats.hits) == (1, 1, 19, 1)


def test_failed_load_reaches_every_waiter_and_is_not_cached() -> None:
    asyncio.run(_test_failed_load_reaches_every_waiter_and_is_not_cached())


async def _test_failed_load_reaches_every_waiter_and_is_not_cached() -> None:
    cache: Cache[str, str] = Cache("t", max_entries=4)
    calls = 0

    async def load() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.02)
        raise PermissionError("denied")

    results = await asyncio.gather(
        *(cache.get("k", load, timeout=5) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, PermissionError) for r in results) and calls == 1
    assert len(cache) == 0
    with pytest.raises(PermissionError):
        await cache.get("k", load, timeout=5)
    assert calls == 2


def test_stalled_flight_does_not_lock_the_key_out() -> None:
    asyncio.run(_test_stalled_flight_does_not_lock_the_key_out())


async def _test_stalled_flight_does_not_lock_the_key_out() -> None:
    """A waiter leaves at its own deadline; after the starter's, a new flight starts."""
    cache: Cache[str, str] = Cache("t", max_entries=4)
    stall = asyncio.Event()

    async def stalled() -> str:
        await stall.wait()
        return "late"

    async def healthy() -> str:
        return "fresh"

    with pytest.raises(TimeoutError):
        await cache.get("k", stalled, timeout=0.05)
    # The stalled load still runs, but its starter's deadline has passed.
    assert await cache.get("k", healthy, timeout=1) == "fresh"
    stall.set()
    await asyncio.sleep(0.01)
    assert cache.peek("k") in ("fresh", "late")


def test_a_late_waiter_leaves_at_its_own_deadline() -> None:
    asyncio.run(_test_a_late_waiter_leaves_at_its_own_deadline())


async def _test_a_late_waiter_leaves_at_its_own_deadline() -> None:
    cache: Cache[str, str] = Cache("t", max_entries=4)
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "v"

    first = asyncio.ensure_future(cache.get("k", slow, timeout=10))
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await cache.get("k", slow, timeout=0.05)
    assert loop.time() - started < 1.0
    release.set()
    assert await first == "v"


def test_expired_lookup_is_reported() -> None:
    asyncio.run(_test_expired_lookup_is_reported())


async def _test_expired_lookup_is_reported() -> None:
    clock = Clock()
    seen = Seen()
    cache: Cache[str, str] = Cache("t", max_entries=4, ttl=1, observer=seen, clock=clock)
    cache.put("k", "v")
    clock.now += 2

    async def load() -> str:
        return "w"

    assert await cache.get("k", load, timeout=1) == "w"
    assert [r for _, r in seen.results] == [EXPIRED, MISS]
