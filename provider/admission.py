"""Admit whole mounts per backend; shed the rest early with UNAVAILABLE.

Under overload every mount used to start at once and share the threads, so
each one advanced a little and all of them ran out of time together: 200
mounts of 10 objects against a backend taking 1 s per request, 20 s deadline,
0 succeeded, though the threads could have finished ~60. Here a backend runs at
most ``limit`` mounts at once; a mount, once admitted, keeps its place until it
is done (mounts already in progress are never slowed by newcomers), and the
others wait in arrival order. A waiting mount is turned away with UNAVAILABLE
(the driver and kubelet retry it) as soon as it could not finish in time:
on arrival when the queue ahead of it, at the recent mount time, would take
longer than its deadline, and at the latest when what is left of its deadline
is shorter than one recent mount.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from types import TracebackType

from provider.errors import Unavailable
from provider.retry import Deadline

# Weight of the newest mount in the moving average of mount times.
SMOOTHING = 0.2
# A waiting mount leaves the queue when less than this many typical mount
# times are left: admitted later, it would likely end in DEADLINE_EXCEEDED.
MARGIN = 1.5


def default_limit(workers: int, max_parallel: int) -> int:
    """Mounts at once per backend: enough to keep every thread busy, twice over.

    One mount uses up to ``max_parallel`` threads; twice the mounts that fill
    the pool keeps it full while mounts start and finish.
    """
    return max(2, 2 * math.ceil(workers / max(1, max_parallel)))


class Overloaded(Unavailable):
    """Shed before the deadline: the backend's mounts could not finish in time."""

    code = "Overloaded"


class Admission:
    """A FIFO gate of ``limit`` whole mounts, with early shedding (one per backend)."""

    def __init__(self, name: str, limit: int, *, queue_limit: int | None = None) -> None:
        self.name = name
        self.limit = max(1, limit)
        self.queue_limit = queue_limit if queue_limit is not None else 8 * self.limit
        self.active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        # Moving average of how long an admitted mount takes (None: no mount yet).
        self.mount_seconds: float | None = None
        self.shed = 0

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def enter(self, deadline: Deadline) -> _Slot:
        return _Slot(self, deadline)

    async def _acquire(self, deadline: Deadline) -> None:
        if self.active < self.limit and not self._waiters:
            self.active += 1
            return
        typical = self.mount_seconds
        ahead = len(self._waiters)
        if ahead >= self.queue_limit:
            self._shed(f"{ahead} mounts are already waiting")
        # Arrival order: this mount starts after `ahead // limit + 1` rounds.
        rounds = ahead // self.limit + MARGIN + 1
        if typical is not None and rounds * typical > deadline.remaining():
            self._shed(f"{self.active + ahead} mounts are ahead of this one")
        # Leave the queue while a typical mount could still finish, with half
        # a mount to spare: mounts vary (half the time left when none has
        # finished yet).
        left = deadline.remaining()
        budget = left - (MARGIN * typical if typical is not None else left / 2)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout=max(0.0, budget))
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # handed a slot just as the wait ended: pass it on
            else:
                waiter.cancel()
            self._shed("no mount slot came free in time")
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()
            else:
                waiter.cancel()
            raise
        finally:
            with contextlib.suppress(ValueError):  # already handed a slot
                self._waiters.remove(waiter)

    def _shed(self, why: str) -> None:
        self.shed += 1
        raise Overloaded(
            f"the provider is at its limit of {self.limit} concurrent {self.name} mounts "
            f"and {why}; the mount is retried"
        )

    def _release(self) -> None:
        """Hand the slot to the longest waiter, or free it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.active -= 1

    def _finished(self, seconds: float) -> None:
        previous = self.mount_seconds
        self.mount_seconds = (
            seconds if previous is None else previous + SMOOTHING * (seconds - previous)
        )
        self._release()


class _Slot:
    """``async with admission.enter(deadline):`` one admitted mount."""

    def __init__(self, admission: Admission, deadline: Deadline) -> None:
        self._admission = admission
        self._deadline = deadline
        self._started = 0.0

    async def __aenter__(self) -> None:
        await self._admission._acquire(self._deadline)
        self._started = time.monotonic()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._admission._finished(time.monotonic() - self._started)
