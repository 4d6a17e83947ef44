"""``FetchContext.call_async``: an asyncio-native call with ``call``'s guarantees.

Bounded to ``max_parallel`` calls of a mount at once; one timer per mount ends
every call still waiting or running at the deadline, as DeadlineExceeded (and
takes its cancellation back, so the caller's task is not left cancelling);
the caller's own cancellation stays a cancellation; a TimeoutError of the
call itself is the backend's (translated), not the deadline; every started
call is counted once with its outcome.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from provider.backends.base import FetchContext
from provider.errors import DeadlineExceeded, ProviderError, Unavailable
from provider.request import parse_mount_request
from provider.retry import Deadline, RetryPolicy
from tests.core.test_lanes import Seen


def _ctx(seconds: float, *, parallel: int = 2, observer: Seen | None = None) -> FetchContext:
    request = parse_mount_request(attributes=json.dumps({}), secrets="null", permission="420")

    def translate(exc: BaseException, *, subject: str, operation: str) -> ProviderError:
        return Unavailable(f"{subject}: {type(exc).__name__}")

    return FetchContext(
        request=request, deadline=Deadline.after(seconds), executor=ThreadPoolExecutor(1),
        max_parallel=parallel, backend="test", observer=observer,
        retry=RetryPolicy(attempts=1), translate=translate,
    )


def test_at_most_max_parallel_calls_run_at_once() -> None:
    running = peak = 0

    async def call() -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return 1

    async def main() -> list[int]:
        ctx = _ctx(5, parallel=3)
        return await asyncio.gather(*(ctx.call_async(call, operation="op") for _ in range(10)))

    assert asyncio.run(main()) == [1] * 10
    assert peak == 3


def test_the_deadline_ends_running_and_waiting_calls_and_leaves_no_cancellation() -> None:
    seen = Seen()

    async def hang() -> None:
        await asyncio.sleep(60)

    async def one(ctx: FetchContext) -> str:
        try:
            await ctx.call_async(hang, operation="op")
        except DeadlineExceeded as exc:
            task = asyncio.current_task()
            assert task is not None and task.cancelling() == 0  # taken back
            return exc.message
        return "answered"

    async def main() -> list[str]:
        ctx = _ctx(0.3, parallel=1, observer=seen)
        return await asyncio.gather(one(ctx), one(ctx))

    messages = asyncio.run(main())
    assert sorted(messages) == [
        "the backend did not answer op before the mount deadline",
        "the mount deadline ran out before op could start",
    ]
    assert seen.requests == [("op", "DeadlineExceeded")]  # the one that started, once


def test_the_callers_cancellation_stays_a_cancellation() -> None:
    seen = Seen()

    async def hang() -> None:
        await asyncio.sleep(60)

    async def main() -> None:
        ctx = _ctx(30, observer=seen)
        task = asyncio.ensure_future(ctx.call_async(hang, operation="op"))
        await asyncio.sleep(0.05)
        task.cancel()
        cancelled = False
        try:
            await task
        except asyncio.CancelledError:
            cancelled = True  # (not kept: its traceback would hold the context)
        assert cancelled
        # The mount's deadline timer went with its last call: nothing on the
        # loop keeps the mount's context until its deadline.
        assert ctx._deadline_timer is None

    asyncio.run(main())
    assert seen.requests == [("op", "Internal")]


def test_a_timeout_of_the_call_itself_is_the_backends_not_the_deadline() -> None:
    async def slow_backend() -> None:
        raise TimeoutError

    async def main() -> None:
        ctx = _ctx(30)
        with pytest.raises(Unavailable) as caught:
            await ctx.call_async(slow_backend, operation="op", subject="object 'a'")
        assert caught.value.message == "object 'a': TimeoutError"

    asyncio.run(main())
