"""Single flight through FetchContext: a waiter is not failed by the starter's deadline."""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor

from provider.backends.base import FetchContext
from provider.cache import Cache
from provider.request import parse_mount_request
from provider.retry import Deadline


def _ctx(pool: ThreadPoolExecutor, seconds: float) -> FetchContext:
    request = parse_mount_request(attributes=json.dumps({}), secrets="null", permission="420")
    return FetchContext(request=request, deadline=Deadline.after(seconds), executor=pool,
                        max_parallel=4, backend="test")


def test_a_waiter_outliving_the_starter_starts_its_own_flight() -> None:
    asyncio.run(_waiter_outlives_starter())


async def _waiter_outlives_starter() -> None:
    cache: Cache[str, str] = Cache("t", max_entries=4)
    calls = 0

    def slow_login() -> str:
        nonlocal calls
        calls += 1
        time.sleep(0.8)
        return "token"

    with ThreadPoolExecutor(4) as pool:
        short, long = _ctx(pool, 0.5), _ctx(pool, 5.0)
        starter = asyncio.ensure_future(short.shared(cache, "k", slow_login, operation="login"))
        await asyncio.sleep(0.01)
        waiter = asyncio.ensure_future(long.shared(cache, "k", slow_login, operation="login"))
        results = await asyncio.gather(starter, waiter, return_exceptions=True)
    assert type(results[0]).__name__ == "DeadlineExceeded"
    assert results[1] == "token"
    assert calls == 2  # the waiter joined the first flight, then started its own
    assert cache.stats().coalesced == 1
