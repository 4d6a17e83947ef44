"""`--log-level debug` tells why a mount is slow: retries with their wait, cache misses.

Never a key or a value: the records carry codes, counts and cache names.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from provider.cache import Cache
from provider.errors import Unavailable
from provider.retry import Deadline, RetryPolicy, with_retries

SECRET = "s3cr3t-value-9a1"


def test_a_retry_is_logged_with_its_wait(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Unavailable(f"busy reading {SECRET}", code="Throttled", retry_after=0.02)
        return "ok"

    with caplog.at_level(logging.DEBUG, logger="provider.retry"):
        result = asyncio.run(
            with_retries(flaky, deadline=Deadline.after(5), policy=RetryPolicy())
        )
    assert result == "ok"
    (record,) = [r for r in caplog.records if r.getMessage() == "retrying"]
    assert record.code == "Throttled"  # type: ignore[attr-defined]
    assert record.wait_ms == 20.0 and record.server_asked is True  # type: ignore[attr-defined]
    assert SECRET not in caplog.text


def test_cache_misses_are_logged_hits_are_not(caplog: pytest.LogCaptureFixture) -> None:
    cache: Cache[tuple[str, str, str], str] = Cache("objects", max_entries=4)

    async def load() -> str:
        return SECRET

    async def twice() -> None:
        await cache.get(("ns", "sa", "db/password"), load, timeout=1)
        await cache.get(("ns", "sa", "db/password"), load, timeout=1)

    with caplog.at_level(logging.DEBUG, logger="provider.cache"):
        asyncio.run(twice())
    # Only the cache's records: an earlier test may leave other loggers at debug.
    records = [r for r in caplog.records if r.name == "provider.cache"]
    assert [r.getMessage() for r in records] == ["cache miss"]
    assert records[0].cache == "objects"  # type: ignore[attr-defined]
    assert SECRET not in caplog.text and "db/password" not in caplog.text


def test_each_backend_request_and_refresh_is_logged_without_values(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import json
    from concurrent.futures import ThreadPoolExecutor

    from provider.backends.base import FetchContext
    from provider.request import parse_mount_request

    request = parse_mount_request(attributes=json.dumps({}), secrets="null", permission="420")
    cache: Cache[str, str] = Cache("logins", max_entries=4)

    async def run(pool: ThreadPoolExecutor) -> str:
        ctx = FetchContext(request=request, deadline=Deadline.after(5), executor=pool,
                           max_parallel=2, backend="test")
        await ctx.shared(cache, "id", lambda: SECRET, operation="login")
        await ctx.shared(cache, "id", lambda: SECRET, operation="login")  # a hit: no log
        return await ctx.call(lambda: SECRET, operation="GetSecret", subject="object 'db'")

    with caplog.at_level(logging.DEBUG, logger="provider.backend"), ThreadPoolExecutor(2) as pool:
        assert asyncio.run(run(pool)) == SECRET
    refreshing = [r for r in caplog.records if r.getMessage() == "refreshing"]
    requests = [r for r in caplog.records if r.getMessage() == "backend request"]
    assert len(refreshing) == 1 and refreshing[0].operation == "login"  # type: ignore[attr-defined]
    assert [(r.operation, r.outcome) for r in requests] == [  # type: ignore[attr-defined]
        ("login", "ok"), ("GetSecret", "ok")
    ]
    assert requests[1].subject == "object 'db'"  # type: ignore[attr-defined]
    assert SECRET not in caplog.text
