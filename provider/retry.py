"""Bounded retries with capped exponential backoff and full jitter.

Only :class:`~provider.errors.Unavailable` is retried: throttling, network and
server faults. Every wait fits inside the call's deadline, so a slow backend
turns into UNAVAILABLE (which the driver itself retries) well before kubelet's
two-minute budget is gone. SDK-level retries are switched off in the backends
so that this is the one retry loop and it honours our deadline.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from provider.errors import DeadlineExceeded, Unavailable

T = TypeVar("T")


@dataclass(frozen=True)
class Deadline:
    """An absolute point on the monotonic clock by which a Mount must answer."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    base_delay: float = 0.1
    max_delay: float = 2.0
    # Never start an attempt with less than this left: it could not finish.
    min_attempt_time: float = 0.2

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (attempt counts from 1)."""
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.max_delay * 4)
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not crypto


OnRetry = Callable[[Unavailable, int], None]


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    deadline: Deadline,
    policy: RetryPolicy,
    on_retry: OnRetry | None = None,
) -> T:
    """Run ``call`` until it succeeds, fails for good, or time runs out."""
    attempt = 1
    # The transient fault that made us retry. When a retry is then cut short by
    # the deadline, this is the fault to report: it names the real cause, and
    # UNAVAILABLE is the code the driver itself retries.
    last: Unavailable | None = None
    while True:
        if deadline.remaining() < policy.min_attempt_time:
            if last is not None:
                raise last
            raise DeadlineExceeded("the mount deadline ran out before the backend answered")
        try:
            return await call()
        except DeadlineExceeded:
            if last is not None:
                raise last from None
            raise
        except Unavailable as exc:
            last = exc
            if attempt >= policy.attempts:
                raise
            wait = policy.delay(attempt, exc.retry_after)
            if deadline.remaining() - wait < policy.min_attempt_time:
                raise  # no time for another attempt: report the real fault
            if on_retry is not None:
                on_retry(exc, attempt)
            await asyncio.sleep(wait)
            attempt += 1
