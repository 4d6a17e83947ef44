"""Durations, the refresh policy, and what the object cache never shows."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from provider.backends.base import FetchContext
from provider.cache import CacheSet
from provider.durations import parse_duration, refresh_interval
from provider.errors import Problems
from provider.objectcache import ObjectCache, RefreshPolicy
from provider.request import parse_mount_request
from provider.retry import Deadline


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0.0), ("30s", 30.0), ("2m", 120.0), ("1h30m", 5400.0), ("1.5h", 5400.0),
     ("1500ms", 1.5), (".5s", 0.5), ("10us", 1e-5), ("2h3m4s", 7384.0)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "-5s", "5 s", "5d", "s", "1h-1m", "x" * 100, "1e3s"])
def test_not_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a Go duration"):
        parse_duration(text)


def test_refresh_parameter_reports_a_problem_naming_it() -> None:
    problems = Problems()
    assert refresh_interval({"refreshInterval": "soon"}, problems) is None
    assert any("refreshInterval" in p for p in problems)
    assert refresh_interval({}, Problems()) is None
    assert refresh_interval({"refreshInterval": " 2m "}, Problems()) == 120.0


def test_policy_default_and_maximum() -> None:
    policy = RefreshPolicy(default=60.0, maximum=600.0)
    assert policy.window(None) == 60.0
    assert policy.window(0.0) == 0.0
    assert policy.window(3600.0) == 600.0


def test_cached_values_never_show_and_clear_empties_everything() -> None:
    asyncio.run(_never_show())


async def _never_show() -> None:
    caches = CacheSet()
    objects = ObjectCache(RefreshPolicy(), caches)
    request = parse_mount_request(
        attributes=json.dumps({"csi.storage.k8s.io/pod.uid": "uid-1"}), secrets="null",
        permission="420",
    )
    with ThreadPoolExecutor(2) as pool:
        ctx = FetchContext(request=request, deadline=Deadline.after(5), executor=pool,
                           max_parallel=2, backend="test")

        async def static() -> bytes:
            return b"s3cr3t-value"

        async def lease() -> bytes:
            return b"s3cr3t-lease"

        got = await objects.read(ctx, "id", "static", static, refresh=60.0, size=len,
                                 lifetime=None)
        leased = await objects.read(ctx, "id", "lease", lease, refresh=60.0, size=len,
                                    lifetime=lambda _v: 30.0)
    assert (got, leased) == (b"s3cr3t-value", b"s3cr3t-lease")
    assert (len(objects.shared), len(objects.dynamic)) == (1, 1)  # a lease is never shared
    assert objects.shared.stats().bytes == len(b"s3cr3t-value")
    assert "s3cr3t" not in repr(objects.shared) + repr(objects.dynamic) + repr(objects)
    assert {c.name for c in caches.caches()} == {"objects", "dynamic"}
    assert objects.forget_identity("id") == 2
    assert objects.forget_identity("id") == 0
