"""A total-time bound on every backend request, enforced at the socket.

The SDKs bound each socket operation, not a request: botocore's
``read_timeout`` and requests' timeouts apply to every ``recv``, so a backend
that sends one byte a second keeps a thread forever, and the mount deadline
(``asyncio.wait_for``) abandons the future but not the thread.

Every backend request checks a connection out of urllib3's
``HTTPConnectionPool`` and returns it there: botocore's, the Vault and Key
Vault transports' own, and azure-core's (through requests) for the VM managed
identity. So
while :func:`run_until` runs a blocking call in a worker thread, every
connection that thread checks out is recorded with the call's deadline, and a
watchdog thread shuts down the sockets of calls still running at their
deadline. The blocked ``recv`` returns at once, the SDK raises, the thread is
free, and urllib3 discards the broken connection instead of reusing it, so a
keep-alive pool holds only healthy connections afterwards.
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

# How late past its deadline a call may be cut: the watchdog's resolution.
TICK = 0.1


class _Call:
    __slots__ = ("conns", "deadline")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.conns: set[Any] = set()


class _Registry:
    """The calls being timed, the urllib3 hook and the watchdog (one per process)."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.lock = threading.Lock()
        self.calls: set[_Call] = set()
        self.installed = False
        self.watchdog: threading.Thread | None = None
        self.wake = threading.Event()
        # When the watchdog wakes next by itself (monotonic; inf: not before a
        # call starts). Read and written under ``lock``.
        self.next_wake = 0.0

    def start(self, call: _Call) -> None:
        self.install()
        with self.lock:
            self.calls.add(call)
            if self.watchdog is None or not self.watchdog.is_alive():
                self.watchdog = threading.Thread(target=self.watch, name="calltime", daemon=True)
                self.watchdog.start()
            # Wake it only when it would otherwise cut this call more than a
            # TICK late: the calls of one mount share a deadline, and waking
            # the watchdog for each of them cost more CPU than the calls' own
            # HTTP work (issue 16). (It sleeps until just past the earliest
            # deadline, so comparing the deadline itself woke it every time.)
            wake = call.deadline + TICK < self.next_wake
        if wake:
            self.wake.set()
        self.local.call = call

    def end(self, call: _Call) -> None:
        self.local.call = None
        with self.lock:
            self.calls.discard(call)
            call.conns.clear()

    def install(self) -> None:
        """Wrap urllib3's connection check-out and check-in, once per process."""
        if self.installed:
            return
        from urllib3.connectionpool import HTTPConnectionPool

        with self.lock:
            if self.installed:
                return
            get_conn = HTTPConnectionPool._get_conn
            put_conn = HTTPConnectionPool._put_conn
            registry = self

            def _get_conn(pool: HTTPConnectionPool, timeout: float | None = None) -> Any:
                conn = get_conn(pool, timeout)
                call: _Call | None = getattr(registry.local, "call", None)
                if call is not None:
                    with registry.lock:
                        call.conns.add(conn)
                return conn

            def _put_conn(pool: HTTPConnectionPool, conn: Any) -> None:
                call: _Call | None = getattr(registry.local, "call", None)
                if call is not None and conn is not None:
                    with registry.lock:
                        call.conns.discard(conn)
                put_conn(pool, conn)

            HTTPConnectionPool._get_conn = _get_conn  # type: ignore[method-assign,assignment]
            HTTPConnectionPool._put_conn = _put_conn  # type: ignore[method-assign,assignment]
            self.installed = True

    def watch(self) -> None:
        while True:
            # Cleared before the calls are read: a call started after this
            # point either is seen below or sees next_wake and sets the event.
            self.wake.clear()
            now = time.monotonic()
            overdue: list[Any] = []
            upcoming: list[float] = []
            with self.lock:
                for call in self.calls:
                    if call.deadline <= now:
                        # Every tick: a connection may have been checked out
                        # (or finished connecting) since the last one.
                        overdue.extend(call.conns)
                    else:
                        upcoming.append(call.deadline)
                if overdue:
                    wait: float | None = TICK
                elif upcoming:
                    wait = max(min(upcoming) - now, 0.0) + 0.01
                else:
                    wait = None  # no call at all: sleep until one starts
                self.next_wake = now + wait if wait is not None else math.inf
            for conn in overdue:
                _cut(conn)
            self.wake.wait(wait)


_registry = _Registry()


def run_until(deadline: float, fn: Callable[[], T]) -> T:
    """Run ``fn`` (in this thread); its HTTP sockets are shut at ``deadline`` (monotonic)."""
    call = _Call(deadline)
    _registry.start(call)
    try:
        return fn()
    finally:
        _registry.end(call)


def active_calls() -> int:
    """Calls being timed right now (for tests and metrics)."""
    with _registry.lock:
        return len(_registry.calls)


def _cut(conn: Any) -> None:
    """Shut the connection's socket down: the thread blocked on it wakes with an error."""
    sock = getattr(conn, "sock", None)
    if sock is None:
        return
    # The plain socket's shutdown, also for TLS: SSLSocket.shutdown would first
    # drop its SSL object under the thread still reading from it. OSError:
    # already closed.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
