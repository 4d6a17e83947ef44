"""One mount's blocking calls: at most ``width`` at once, on its backend's thread pool.

A mount of 50 objects makes 50 short blocking calls. Handing each to the pool
by itself (``loop.run_in_executor`` under a semaphore, inside
``asyncio.wait_for``) cost about as much CPU as a Vault read's own HTTP work:
per call a concurrent Future with its condition variable, a queue put and a
thread wake-up, an asyncio Future chained to it, a timer, a semaphore waiter
for each queued call and a loop wake-up per answer (issue 16). Here a mount
queues its calls and runs them on at most ``width`` *lanes*: a lane is one
pool task that takes the mount's next call as soon as it has finished one and
ends when the queue is empty, so the pool hands out a thread per lane, not
per call, and answers go back to the event loop in batches (one loop wake-up
for every answer that arrived meanwhile, and no lock on the way).

What the per-call hop guaranteed still holds:

- bounded: never more than ``width`` calls of one mount run at once, and a
  lane never holds a thread waiting for work;
- deadline: every call runs under :func:`provider.calltime.run_until` (its
  sockets are shut at the deadline), a lane starts no call once the deadline
  has passed, and at the deadline every call still waiting for a thread or
  running fails on the loop at once (one timer per mount);
- cancellation: a call whose caller was cancelled before a lane took it never
  runs (as a cancelled executor future never starts).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, Generic, TypeVar

from provider import calltime

T = TypeVar("T")


class NotStarted(Exception):
    """The deadline came before a lane took the call: it never reached the backend."""


class Overdue(Exception):
    """The deadline came while the call ran: the caller stops waiting for it."""


class Job(Generic[T]):
    """One call: ``fn``, its outcome (loop side) and its running time (set by the lane)."""

    __slots__ = ("fn", "future", "ok", "seconds", "started", "value")

    def __init__(self, fn: Callable[[], T]) -> None:
        self.fn = fn
        self.future: asyncio.Future[T] | None = None
        self.ok = False  # set by the lane: ``value`` is fn's result, else what it raised
        self.value: Any = None
        self.started = 0.0  # perf_counter when a lane started it; 0: not (yet)
        self.seconds = 0.0  # how long it ran, once it has

    def elapsed(self) -> float:
        """Seconds the call ran (so far, if it still runs); 0 if it never started."""
        if not self.started:
            return 0.0
        return self.seconds or time.perf_counter() - self.started


class Lanes:
    """The calls of one mount (one per FetchContext), run on ``executor``."""

    def __init__(self, executor: Executor, width: int, deadline: float) -> None:
        self._executor = executor
        self._width = max(1, width)
        self._deadline = deadline  # monotonic, as the loop's clock
        # Shared by the lanes and the loop without a lock (deque appends and
        # pops are atomic): a contended lock cost two thread switches per
        # call. Only the count of lanes running changes under the lock.
        self._queue: deque[Job[Any]] = deque()  # calls no lane has taken yet
        self._answers: deque[Job[Any]] = deque()  # finished calls not yet handed over
        self._handover_due = False
        self._lock = threading.Lock()
        self._running = 0
        # Loop thread only: calls whose caller still waits, and the deadline timer.
        self._waiting: set[Job[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, job: Job[T]) -> asyncio.Future[T]:
        """Queue ``job`` for a lane (on the loop); its future holds what ``job.fn()`` returns.

        The future fails with what ``fn`` raised, or with :class:`NotStarted` or
        :class:`Overdue` at the deadline; cancelling it drops the call if no
        lane has started it. Raises :class:`NotStarted` if the deadline has
        passed already. The caller awaits the future, then calls :meth:`forget`
        (two plain calls, not a coroutine: one frame fewer per call).
        """
        if time.monotonic() >= self._deadline:
            raise NotStarted
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        job.future = future
        if self._timer is None:
            self._timer = loop.call_at(self._deadline, self._expire)
        self._waiting.add(job)
        try:
            self._enqueue(job)
        except BaseException:
            self.forget(job)
            raise
        return future

    def forget(self, job: Job[Any]) -> None:
        """``job``'s caller no longer waits (answered, failed or cancelled)."""
        self._waiting.discard(job)
        if not self._waiting and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _enqueue(self, job: Job[Any]) -> None:
        self._queue.append(job)
        # Read without the lock: a lane that is about to end looks at the
        # queue again after it has counted itself out (see _lane).
        if self._running >= self._width:
            return
        with self._lock:
            if self._running >= self._width:
                return
            self._running += 1
        try:
            self._executor.submit(self._lane)
        except BaseException:  # the pool is shut down: this call cannot run
            with self._lock:
                self._running -= 1
                mine = self._running == 0
            if mine:
                with contextlib.suppress(ValueError):  # a lane ending just now took it
                    self._queue.remove(job)
                raise

    def _lane(self) -> None:
        """A pool thread: the mount's queued calls, one after another, until none is left."""
        queue = self._queue
        while True:
            try:
                job = queue.popleft()
            except IndexError:
                with self._lock:
                    self._running -= 1
                    # A call queued since the pop above by a caller that still
                    # counted this lane is this lane's, unless a new lane started.
                    if not queue or self._running >= self._width:
                        return
                    self._running += 1
                continue
            future = job.future
            assert future is not None
            if future.done():  # its caller was cancelled, or the deadline failed it
                continue
            if time.monotonic() >= self._deadline:
                job.value = NotStarted()
            else:
                job.started = time.perf_counter()
                try:
                    job.value = calltime.run_until(self._deadline, job.fn)
                    job.ok = True
                except BaseException as exc:  # handed to the caller, as an executor would
                    job.value = exc
                job.seconds = time.perf_counter() - job.started
            self._answer(job)

    def _answer(self, job: Job[Any]) -> None:
        self._answers.append(job)
        if self._handover_due:
            return  # a hand-over is on its way: it clears the flag first, then takes this one
        self._handover_due = True
        loop = self._loop
        assert loop is not None
        # RuntimeError: the loop is closed (shutdown): nobody waits for an answer any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._hand_over)

    def _hand_over(self) -> None:
        """On the loop: every answer that arrived since the last hand-over, to its caller."""
        self._handover_due = False
        answers = self._answers
        while answers:
            job = answers.popleft()
            future = job.future
            assert future is not None
            if future.done():  # cancelled, or failed at the deadline
                continue
            if job.ok:
                future.set_result(job.value)
            else:
                future.set_exception(job.value)

    def _expire(self) -> None:
        """On the loop, at the deadline: no caller waits for a call any longer."""
        self._timer = None
        for job in self._waiting:
            future = job.future
            assert future is not None
            if not future.done():
                future.set_exception(
                    Overdue() if job.started else NotStarted()
                )
