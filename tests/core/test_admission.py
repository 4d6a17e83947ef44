"""The admission gate: FIFO hand-over, no slot lost to a cancelled or late waiter,
early shedding from the recent mount time."""

from __future__ import annotations

import asyncio

import pytest

from provider.admission import Admission, Overloaded, default_limit
from provider.retry import Deadline


def test_default_limit_fills_the_threads_twice() -> None:
    assert default_limit(32, 8) == 8
    assert default_limit(4, 2) == 4
    assert default_limit(1, 8) == 2


async def _hold(gate: Admission, seconds: float, order: list[str], name: str) -> None:
    async with gate.enter(Deadline.after(5)):
        order.append(name)
        await asyncio.sleep(seconds)


def test_waiters_are_admitted_in_arrival_order() -> None:
    async def scenario() -> list[str]:
        gate = Admission("vault", 1)
        order: list[str] = []
        tasks = []
        for name in "abcd":
            tasks.append(asyncio.ensure_future(_hold(gate, 0.02, order, name)))
            await asyncio.sleep(0)  # arrive one after another
        await asyncio.gather(*tasks)
        assert gate.active == 0 and gate.waiting == 0
        return order

    assert asyncio.run(scenario()) == ["a", "b", "c", "d"]


def test_a_cancelled_waiter_loses_no_slot() -> None:
    async def scenario() -> None:
        gate = Admission("aws", 1)
        order: list[str] = []
        first = asyncio.ensure_future(_hold(gate, 0.05, order, "first"))
        await asyncio.sleep(0)
        gone = asyncio.ensure_future(_hold(gate, 0.0, order, "gone"))
        await asyncio.sleep(0.01)
        gone.cancel()
        await asyncio.gather(first, gone, return_exceptions=True)
        assert gate.active == 0 and gate.waiting == 0
        await _hold(gate, 0.0, order, "next")  # the slot is there at once
        assert order == ["first", "next"]

    asyncio.run(scenario())


def test_a_mount_that_could_not_finish_in_time_is_shed_at_once() -> None:
    async def scenario() -> None:
        gate = Admission("azure", 1)
        gate.mount_seconds = 2.0  # recent mounts took 2 s
        holder = asyncio.ensure_future(_hold(gate, 0.2, [], "holder"))
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(Overloaded, match="concurrent azure mounts"):
            async with gate.enter(Deadline.after(3.0)):
                pass
        assert loop.time() - started < 0.1  # not after waiting out the deadline
        assert gate.shed == 1
        await holder
        assert gate.active == 0

    asyncio.run(scenario())


def test_a_waiter_leaves_while_a_typical_mount_could_still_finish() -> None:
    async def scenario() -> None:
        gate = Admission("vault", 1)
        gate.mount_seconds = 0.2
        holder = asyncio.ensure_future(_hold(gate, 2.0, [], "holder"))
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(Overloaded, match="concurrent vault mounts"):
            async with gate.enter(Deadline.after(1.0)):
                pass
        # Next in line, it needs up to a round of waiting, its own mount and
        # a margin (2.5 x 0.2 s): it leaves when 0.5 s of its 1 s are left,
        # not at the deadline and not at once.
        assert 0.3 < loop.time() - started < 0.8
        holder.cancel()
        await asyncio.gather(holder, return_exceptions=True)
        assert gate.active == 0 and gate.waiting == 0

    asyncio.run(scenario())
