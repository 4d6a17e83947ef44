"""One mount's calls on its lanes (provider.lanes), through ``FetchContext.call``.

What the per-call executor hop guaranteed must still hold: at most
``max_parallel`` calls of a mount at once, a cancelled call that has not
started never runs, the deadline frees the caller of a call that is stuck
(even outside HTTP, where provider.calltime cannot cut it) and of calls still
queued behind it, every started call is counted once with its outcome, and
transient faults are retried.
"""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from provider.backends.base import FetchContext
from provider.codes import ErrorCode
from provider.errors import DeadlineExceeded, NotFound, Unavailable
from provider.request import parse_mount_request
from provider.retry import Deadline, RetryPolicy


class Seen:
    """A RequestObserver that keeps what it is told."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.retries: list[tuple[str, str]] = []

    def backend_request(self, backend: str, operation: str, outcome: str, seconds: float) -> None:
        assert seconds >= 0
        self.requests.append((operation, outcome))

    def backend_retry(self, backend: str, operation: str, code: str) -> None:
        self.retries.append((operation, code))


def _ctx(
    pool: ThreadPoolExecutor,
    *,
    seconds: float = 10.0,
    parallel: int = 3,
    observer: Seen | None = None,
    retry: RetryPolicy | None = None,
) -> FetchContext:
    request = parse_mount_request(attributes=json.dumps({}), secrets="null", permission="420")
    return FetchContext(request=request, deadline=Deadline.after(seconds), executor=pool,
                        max_parallel=parallel, backend="test", observer=observer,
                        retry=retry or RetryPolicy(attempts=1))


def test_a_mount_never_runs_more_calls_at_once_than_max_parallel() -> None:
    lock = threading.Lock()
    running = peak = 0
    release = threading.Event()

    def read(i: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            if running == 3 and not release.is_set():
                # Hold the first three a moment: with a bound above three, more
                # calls would start meanwhile (the pool has 16 threads).
                threading.Timer(0.2, release.set).start()
        release.wait(5)
        with lock:
            running -= 1
        return i * i

    async def mount() -> list[int]:
        ctx = _ctx(pool, parallel=3)
        return await ctx.gather(ctx.call(read, i, operation="Read") for i in range(20))

    with ThreadPoolExecutor(16) as pool:
        assert asyncio.run(mount()) == [i * i for i in range(20)]
    assert peak == 3


def test_a_call_cancelled_before_it_started_never_runs() -> None:
    release = threading.Event()
    ran: list[str] = []

    def read(name: str) -> str:
        ran.append(name)
        if name == "first":
            release.wait(5)
        return name

    async def mount() -> None:
        ctx = _ctx(pool, parallel=1)
        first = asyncio.ensure_future(ctx.call(read, "first", operation="Read"))
        queued = asyncio.ensure_future(ctx.call(read, "queued", operation="Read"))
        await asyncio.sleep(0.05)  # "first" holds the mount's only lane
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        release.set()
        assert await first == "first"

    with ThreadPoolExecutor(4) as pool:
        asyncio.run(mount())
    assert ran == ["first"]


def test_the_deadline_frees_a_stuck_call_and_the_calls_queued_behind_it() -> None:
    stuck = threading.Event()  # set only after the mount has given up
    seen = Seen()

    def hang() -> str:
        stuck.wait(10)
        return "late"

    def quick() -> str:
        return "never"

    async def mount() -> list[BaseException | str]:
        ctx = _ctx(pool, seconds=0.3, parallel=1, observer=seen)
        return await asyncio.gather(
            ctx.call(hang, operation="Hang", retry=False),
            ctx.call(quick, operation="Quick", retry=False),
            return_exceptions=True,
        )

    with ThreadPoolExecutor(4) as pool:
        try:
            hung, queued = asyncio.run(mount())
            # Returned while hang() still blocks its thread: the deadline did it.
            assert not stuck.is_set()
        finally:
            stuck.set()
    assert isinstance(hung, DeadlineExceeded)
    assert str(hung.message) == "the backend did not answer Hang before the mount deadline"
    assert isinstance(queued, DeadlineExceeded)
    assert str(queued.message) == "the mount deadline ran out before Quick could start"
    # The stuck call reached the backend; the queued one never did.
    assert seen.requests == [("Hang", "DeadlineExceeded")]


def test_every_started_call_is_counted_once_with_its_outcome() -> None:
    seen = Seen()

    def read(name: str) -> str:
        if name == "gone":
            raise NotFound(f"object {name!r} not found")
        return name

    async def mount() -> None:
        ctx = _ctx(pool, observer=seen)
        assert await ctx.call(read, "db", operation="Read") == "db"
        with pytest.raises(NotFound):
            await ctx.call(read, "gone", operation="Read")

    with ThreadPoolExecutor(4) as pool:
        asyncio.run(mount())
    assert seen.requests == [("Read", "ok"), ("Read", ErrorCode.ObjectNotFound)]


def test_a_transient_fault_is_retried_and_both_tries_are_counted() -> None:
    seen = Seen()
    tries = 0

    def flaky() -> str:
        nonlocal tries
        tries += 1
        if tries == 1:
            raise Unavailable("throttled", retry_after=0.0)
        return "ok"

    async def mount() -> str:
        ctx = _ctx(pool, observer=seen, retry=RetryPolicy(attempts=3))
        return await ctx.call(flaky, operation="Read")

    with ThreadPoolExecutor(4) as pool:
        assert asyncio.run(mount()) == "ok"
    assert tries == 2
    assert seen.retries == [("Read", ErrorCode.BackendUnavailable)]
    assert seen.requests == [("Read", ErrorCode.BackendUnavailable), ("Read", "ok")]


def test_a_call_with_too_little_time_left_is_not_tried() -> None:
    seen = Seen()
    ran: list[int] = []

    async def mount() -> None:
        ctx = _ctx(pool, seconds=0.1, observer=seen, retry=RetryPolicy(min_attempt_time=0.2))
        with pytest.raises(DeadlineExceeded):
            await ctx.call(ran.append, 1, operation="Read")

    with ThreadPoolExecutor(4) as pool:
        asyncio.run(mount())
    assert ran == []
    assert seen.requests == []


def test_a_call_on_a_shut_down_pool_fails_instead_of_waiting() -> None:
    pool = ThreadPoolExecutor(2)
    pool.shutdown()

    async def mount() -> None:
        await _ctx(pool).call(lambda: "x", operation="Read")

    with pytest.raises(RuntimeError, match="shutdown"):
        asyncio.run(mount())
