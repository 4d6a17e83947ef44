"""Retry-After: parsed as delta-seconds or an HTTP-date, waited for, bounded by the deadline."""

from __future__ import annotations

import asyncio
import email.utils
import time

import pytest

from provider.errors import Unavailable
from provider.retry import (
    RETRY_AFTER_CEILING,
    Deadline,
    RetryPolicy,
    parse_retry_after,
    with_retries,
)

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", 2.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("3600", RETRY_AFTER_CEILING),
        (email.utils.formatdate(NOW + 5, usegmt=True), 5.0),
        (email.utils.formatdate(NOW - 60, usegmt=True), 0.0),  # in the past: now
        (email.utils.formatdate(NOW + 86_400, usegmt=True), RETRY_AFTER_CEILING),
        (None, None),
        ("", None),
        ("soon", None),
        ("-1", None),
        ("inf", None),
        ("nan", None),
        ("1e9", None),
        ("Mon, 99 Foo 2026 99:99:99 GMT", None),
        ("Sat, 05 Dec 2026 10:00:00", None),  # no zone: not an HTTP-date
    ],
)
def test_parse(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


class Throttled:
    """Answers Throttled with a Retry-After once, then succeeds; records when it was called."""

    def __init__(self, retry_after: float, times: int = 1) -> None:
        self.retry_after = retry_after
        self.left = times
        self.calls: list[float] = []

    async def __call__(self) -> str:
        self.calls.append(time.monotonic())
        if self.left:
            self.left -= 1
            raise Unavailable("slow down", code="Throttled", retry_after=self.retry_after)
        return "ok"


def _run(call: Throttled, seconds: float) -> str:
    policy = RetryPolicy(attempts=4, base_delay=0.001, max_delay=0.002, min_attempt_time=0.05)
    return asyncio.run(with_retries(call, deadline=Deadline.after(seconds), policy=policy))


def test_waits_as_long_as_the_server_said() -> None:
    call = Throttled(0.6)
    assert _run(call, seconds=5.0) == "ok"
    gap = call.calls[1] - call.calls[0]
    assert 0.6 <= gap < 1.5  # not the policy's 2 ms backoff, not the old max_delay*4 cap


def test_a_wait_longer_than_the_old_cap_is_kept_when_the_deadline_allows() -> None:
    policy = RetryPolicy(attempts=2, base_delay=0.001, max_delay=0.1, min_attempt_time=0.05)
    call = Throttled(0.7)  # the old cap was max_delay * 4 = 0.4 s
    assert asyncio.run(with_retries(call, deadline=Deadline.after(5), policy=policy)) == "ok"
    assert call.calls[1] - call.calls[0] >= 0.7


def test_a_wait_past_the_deadline_reports_the_fault_at_once() -> None:
    call = Throttled(30.0)
    started = time.monotonic()
    with pytest.raises(Unavailable, match="slow down") as caught:
        _run(call, seconds=2.0)
    assert caught.value.code == "Throttled"
    assert len(call.calls) == 1 and time.monotonic() - started < 0.5
