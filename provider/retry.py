"""Bounded retries with capped exponential backoff and full jitter.

Only :class:`~provider.errors.Unavailable` is retried: throttling, network and
server faults. A server's Retry-After is honoured (it knows its own load
better than our backoff does). Every wait fits inside the call's deadline: when
it would not, the fault is reported at once instead, so a slow backend
turns into UNAVAILABLE (which the driver itself retries) well before kubelet's
two-minute budget is gone. SDK-level retries are switched off in the backends
so that this is the one retry loop and it honours our deadline.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from provider.errors import DeadlineExceeded, Unavailable

T = TypeVar("T")
log = logging.getLogger("provider.retry")

# However long a server asks us to wait, we never plan a wait longer than this:
# a Retry-After of an hour is a server fault, and the mount deadline (which
# caps every wait anyway) is two minutes at most.
RETRY_AFTER_CEILING = 60.0
_SECONDS = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})?")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from an HTTP Retry-After header (RFC 9110 section 10.2.3).

    Either delta-seconds (``"2"``) or an HTTP-date; a date in the past means
    "now" (0). Anything else is ignored (None), as RFC 9110 allows.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _SECONDS.fullmatch(text):  # RFC 9110 says integer; some servers send "1.5"
        return min(float(text), RETRY_AFTER_CEILING)
    import email.utils  # only for an HTTP-date: the email package is not loaded at idle

    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        return None
    delta = when.timestamp() - (time.time() if now is None else now)
    return min(max(0.0, delta), RETRY_AFTER_CEILING)


@dataclass(frozen=True)
class Deadline:
    """An absolute point on the monotonic clock by which a Mount must answer."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        return self.at - time.monotonic()


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
            # The server's word, up to the ceiling; ``with_retries`` gives up
            # instead when the wait would not leave time for the next attempt.
            return min(retry_after, RETRY_AFTER_CEILING)
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        import random  # the first retry's: 0.2 MiB that an idle server does not pay

        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not crypto


OnRetry = Callable[[Unavailable, int], None]
# Why a call was not even tried: less than a useful attempt's time was left.
NO_TIME_LEFT = "the mount deadline ran out before the backend answered"


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    deadline: Deadline,
    policy: RetryPolicy,
    on_retry: OnRetry | None = None,
    failed: Unavailable | None = None,
) -> T:
    """Run ``call`` until it succeeds, fails for good, or time runs out.

    ``failed``: the caller already made the first attempt (its fast path, no
    loop) and it failed with this; the loop goes on from there as if it had
    made that attempt itself.
    """
    attempt = 1
    # The transient fault that made us retry. When a retry is then cut short by
    # the deadline, this is the fault to report: it names the real cause, and
    # UNAVAILABLE is the code the driver itself retries.
    last: Unavailable | None = None
    while True:
        if failed is None:
            if deadline.remaining() < policy.min_attempt_time:
                if last is not None:
                    raise last
                raise DeadlineExceeded(NO_TIME_LEFT)
            try:
                return await call()
            except DeadlineExceeded:
                if last is not None:
                    raise last from None
                raise
            except Unavailable as exc:
                failed = exc
        fault = last = failed
        failed = None
        if attempt >= policy.attempts:
            raise fault
        wait = policy.delay(attempt, fault.retry_after)
        if deadline.remaining() - wait < policy.min_attempt_time:
            raise fault  # no time for another attempt: report the real fault
        if on_retry is not None:
            on_retry(fault, attempt)
        if log.isEnabledFor(logging.DEBUG):
            # The code and the wait, never the message (it names objects, not values,
            # but a debug line needs no more to say why the mount is slower).
            log.debug("retrying", extra={"code": fault.code, "attempt": attempt,
                                         "wait_ms": round(wait * 1000, 1),
                                         "server_asked": fault.retry_after is not None})
        await asyncio.sleep(wait)
        attempt += 1
