"""A TCP proxy on loopback that delays every client->server chunk.

Why: the test servers (moto, OpenBao, the Key Vault stand-in) answer in a few
milliseconds of their own CPU on this 2-core machine, so on loopback they,
not the network, bound what parallel fetching can gain. Real backends are
5-30 ms away. The benchmark puts this proxy in front of a server to show
what parallel fetching buys when the round trip dominates. It forwards bytes
only, so TLS passes through untouched (the certificate still names 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from tests.support.ports import free_port


class DelayProxy:
    """``127.0.0.1:<port>`` -> ``127.0.0.1:<upstream_port>``, holding requests ``delay`` s."""

    def __init__(self, upstream_port: int, delay: float) -> None:
        self.delay = delay
        self.upstream = upstream_port
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(5)

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}"

    async def _start(self) -> None:
        async def pump(reader: Any, writer: Any, delay: float) -> None:
            try:
                while data := await reader.read(65536):
                    if delay:
                        await asyncio.sleep(delay)
                    writer.write(data)
                    await writer.drain()
            finally:
                writer.close()

        async def handle(reader: Any, writer: Any) -> None:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
            await asyncio.gather(
                pump(reader, up_writer, self.delay),
                pump(up_reader, writer, 0),
                return_exceptions=True,
            )

        self._server = await asyncio.start_server(handle, "127.0.0.1", self.port)

    def close(self) -> None:
        async def stop() -> None:
            self._server.close()
            # Keep-alive connections still open: end them before the loop goes.
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
