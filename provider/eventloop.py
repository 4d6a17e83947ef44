"""Which event loop ``serve`` runs on: uvloop when it is installed, else asyncio's own.

Why: ~40 % of a cold mount's CPU is event-loop work (reading sockets, waking the
tasks of up to ``--max-parallel`` reads, gRPC's callbacks), and asyncio's
selector loop does that work in Python. uvloop (libuv, in C) does it for
less: a fifth to a third less CPU per 50-object AWS mount, ~15 % per Vault
one (bench/README.md, "The event loop"). It costs ~2 MiB of idle RSS (its
13 MB library and libuv's loop), so ``--event-loop asyncio`` trades the CPU
back for the memory. grpc.aio and provider.backends.http1 run on either;
the test suite runs on the one ``auto`` picks.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable

CHOICES = ("auto", "uvloop", "asyncio")


def factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop constructor for ``choice`` (one of CHOICES).

    ``auto`` is uvloop if it is installed and loads, else asyncio's.
    ``uvloop`` when it cannot be imported is a ValueError (the server refuses
    to start, saying so) rather than a silent fallback: the operator asked for it.
    """
    if choice not in CHOICES:
        raise ValueError(f"--event-loop must be one of {', '.join(CHOICES)}")
    if choice == "asyncio" or (choice == "auto" and not uvloop_installed()):
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:  # not installed, or its library does not load here
        if choice == "auto":
            return asyncio.new_event_loop
        raise ValueError(
            "--event-loop uvloop: uvloop is not installed or does not load (pip install uvloop)"
        ) from None
    return uvloop.new_event_loop


def uvloop_installed() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: which loop runs (for the start-up log line)."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
