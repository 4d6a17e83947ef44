"""Admit whole mounts per backend; shed the rest early with UNAVAILABLE.

Under overload every mount used to start at once and share the threads, so
each one advanced a little and all of them ran out of time together: 200
mounts of 10 objects against a backend taking 1 s per request, 20 s deadline,
0 succeeded, though the threads could have finished ~60. Here a backend runs at
most ``limit`` mounts at once; a mount, once admitted, keeps its place until it
is done (mounts already in progress are never slowed by newcomers), and the
others wait in arrival order. A waiting mount is turned away with UNAVAILABLE
(the driver and kubelet retry it) as soon as it could not finish in time: on
arrival and every quarter second while it waits, it checks whether its turn
(a slot frees every recent-mount-time / limit seconds) plus one mount would
outlast its deadline; before any mount has finished it waits at most half its
time.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from types import TracebackType

from provider.codes import ErrorCode
from provider.errors import Unavailable
from provider.retry import Deadline

# Weight of the newest mount in the moving average of mount times.
SMOOTHING = 0.2
# A waiting mount leaves the queue when less than this many typical mount
# times are left: admitted later, it would likely end in DEADLINE_EXCEEDED.
MARGIN = 1.25
# How often a waiting mount re-checks whether it can still make it.
RECHECK = 0.25


def default_limit(workers: int, max_parallel: int) -> int:
    """Mounts at once per backend: enough to keep every thread busy, twice over.

    One mount uses up to ``max_parallel`` threads; twice the mounts that fill
    the pool keeps it full while mounts start and finish.
    """
    return max(2, 2 * math.ceil(workers / max(1, max_parallel)))


class Overloaded(Unavailable):
    """Shed before the deadline: the backend's mounts could not finish in time."""

    code = ErrorCode.Overloaded


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
        if len(self._waiters) >= self.queue_limit:
            self._shed(f"{len(self._waiters)} mounts are already waiting")
        self._check(len(self._waiters), deadline)
        # Until a mount has finished there is no estimate: wait half the time left.
        patience = deadline.at - deadline.remaining() / 2
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            while True:
                typical = self.mount_seconds
                if typical is not None:
                    # Re-checked as the queue moves and the estimate changes:
                    # a hopeless mount leaves as soon as that shows.
                    self._check(self._waiters.index(waiter), deadline)
                    # Leave while a typical mount could still finish, with a
                    # quarter of a mount to spare: mounts vary.
                    leave_at = deadline.at - MARGIN * typical
                else:
                    leave_at = patience
                wait = leave_at - time.monotonic()
                if wait <= 0:
                    self._shed("no mount slot came free in time")
                done, _ = await asyncio.wait({waiter}, timeout=min(wait, RECHECK))
                if done:
                    return
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release()  # handed a slot just as it gave up: pass it on
            else:
                waiter.cancel()
            raise
        finally:
            with contextlib.suppress(ValueError):  # already handed a slot
                self._waiters.remove(waiter)

    def _check(self, position: int, deadline: Deadline) -> None:
        """Shed now if, at the recent mount time, this mount's turn would come too late."""
        typical = self.mount_seconds
        if typical is None:
            return
        # A slot comes free every typical / limit seconds on average: this
        # mount starts after position + 1 of them, then needs a mount's time.
        # (No margin here: the estimate is re-checked as the queue moves, and
        # the margin applies when it finally gives up waiting.)
        if ((position + 1) / self.limit + 1) * typical > deadline.remaining():
            self._shed(f"{self.active + position} mounts are ahead of this one")

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
