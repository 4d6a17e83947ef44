"""Every test's event loop is the one ``serve`` runs on (provider.eventloop).

``asyncio.run`` in a test, like the in-process provider (tests/support/running.py),
gets uvloop when it is installed, as the server does, so the suite checks the
loop users run; POLYSECRET_EVENT_LOOP=asyncio runs it on asyncio's own.
"""

from __future__ import annotations

import asyncio
import os

from provider import eventloop

if eventloop.factory(os.environ.get("POLYSECRET_EVENT_LOOP", "auto")) is not asyncio.new_event_loop:
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
