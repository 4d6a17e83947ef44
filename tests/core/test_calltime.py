"""provider.calltime: the watchdog is woken only when a call needs it sooner.

Every call of a mount shares the mount's deadline. The watchdog sleeps until
just past the earliest deadline it knows, so a rule comparing a new call's
deadline with that wake time woke it for every call (a thread switch and a
scan of all calls, per backend request).
"""

from __future__ import annotations

import threading
import time

from provider import calltime


class CountingEvent(threading.Event):
    def __init__(self) -> None:
        super().__init__()
        self.sets = 0

    def set(self) -> None:
        self.sets += 1
        super().set()


def _asleep(registry: calltime._Registry, before: float = float("inf")) -> float:
    """Wait until the watchdog sleeps towards a deadline (earlier than ``before``)."""
    for _ in range(500):
        with registry.lock:
            if 0 < registry.next_wake < before:
                return registry.next_wake
        time.sleep(0.01)
    raise AssertionError("the watchdog never went to sleep")


def test_calls_sharing_a_deadline_do_not_wake_the_watchdog_but_an_earlier_one_does() -> None:
    registry = calltime._Registry()
    registry.installed = True  # urllib3 keeps the process registry's hook only
    registry.wake = wake = CountingEvent()
    deadline = time.monotonic() + 60
    first = calltime._Call(deadline)
    registry.start(first)
    _asleep(registry)
    woken = wake.sets
    same = [calltime._Call(deadline) for _ in range(20)]
    for call in same:
        registry.start(call)
    assert wake.sets == woken  # one mount's calls: the watchdog sleeps on
    sooner = calltime._Call(deadline - 30)
    registry.start(sooner)
    assert wake.sets == woken + 1  # it must wake to cut this one in time
    # It now sleeps towards the sooner deadline.
    assert _asleep(registry, before=deadline - 29) <= sooner.deadline + calltime.TICK
    for call in [first, *same, sooner]:
        registry.end(call)
    assert calltime.active_calls() == 0
