"""Durations, the refresh policy, and what the object cache never shows."""

from __future__ import annotations

import pytest

from provider.cache import CacheSet
from provider.durations import parse_duration, refresh_interval
from provider.errors import Problems
from provider.objectcache import ObjectCache, RefreshPolicy


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
    caches = CacheSet()
    objects = ObjectCache(RefreshPolicy(), caches)
    from provider.objectcache import _Stored

    objects.shared.put(("id", "req"), _Stored(b"s3cr3t-value", 12, 60.0, None))
    objects.dynamic.put(("uid", "id", "req"), _Stored(b"s3cr3t-lease", 12, 0.0, 5.0), ttl=5)
    shown = repr(objects.shared) + repr(objects.dynamic)
    shown += repr(objects.shared.peek(("id", "req")) and _Stored(b"s3cr3t", 6, 1.0, None))
    assert "s3cr3t" not in shown
    assert {c.name for c in caches.caches()} == {"objects", "dynamic"}
    assert objects.forget_identity("id") == 2
    objects.shared.put(("id", "req"), _Stored(b"v", 1, 60.0, None))
    caches.clear()
    assert len(objects.shared) == 0 and len(objects.dynamic) == 0
