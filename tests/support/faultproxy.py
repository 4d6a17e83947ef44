"""A fault-injecting TCP proxy on loopback, switchable while a test runs.

Why: the real test servers (moto, OpenBao, the Key Vault stand-in) answer
promptly and correctly; the provider's failures show when the network or the
backend does not (issue 10): a stall, a reset, a byte a second, an answer cut
short, ``200 {}``, a burst of 429/503 with Retry-After. This proxy sits between
the provider and a real server and does those things to chosen requests,
switched on and off from the test (fault on -> mount -> fault off -> recovery
mount), and counts what it saw, what it forwarded and which requests a fault
met, so tests can assert on the requests the backend itself received (by path,
or by AWS operation). It is also the suite's only proxy for answers that are
not what the API promises (the backends' bad-answer tests), for plain counting
(the rotation tests) and for a fixed network distance (``latency=``, the
benchmarks): one instrument to keep honest instead of four.

Two modes:

* HTTP (default): requests are read and answers written with h11 (a real
  HTTP/1.1 state machine, keep-alive included), so a fault can pick requests
  (``Fault.match``, e.g. only the STS or login call) and rewrite answers.
  For an HTTPS backend the proxy terminates TLS with the backend's own test
  certificate (``server_ssl``) and talks TLS upstream (``upstream_ssl``), so
  the provider still verifies a real certificate chain.
* raw: bytes are pumped untouched (TLS passes through); only connection-level
  faults apply (latency per chunk, stall, reset, drip). With ``latency=`` it
  stands for a backend 5-30 ms away in front of a TLS server whose certificate
  names 127.0.0.1.

The proxy runs its own asyncio loop on one thread, so a thousand held
connections cost no threads (the overload benchmark counts the provider's).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import re
import socket
import ssl
import struct
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import h11

from tests.support.ports import free_port

# Headers that describe one hop, not the message: never passed through.
_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}
)
_ACTION = re.compile(rb"(?:^|&)Action=([A-Za-z]+)")


@dataclass(frozen=True)
class Request:
    """One HTTP request the proxy read from the client."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = field(repr=False)

    def header(self, name: str) -> str:
        name = name.lower()
        return next((v for k, v in self.headers if k == name), "")

    @property
    def path(self) -> str:
        """The target without its query (what Vault paths are matched on)."""
        return self.target.partition("?")[0]

    @property
    def operation(self) -> str:
        """The AWS operation asked for; "" for other backends.

        JSON APIs (Secrets Manager, SSM) name it in X-Amz-Target, query APIs
        (STS) in the form body's Action.
        """
        target = self.header("x-amz-target")
        if target:
            return target.rpartition(".")[2]
        found = _ACTION.search(self.body)
        return found.group(1).decode("ascii") if found else ""


Match = Callable[[Request], bool]


@dataclass(frozen=True)
class Fault:
    """What to do to the requests ``match`` selects (all when None).

    Build one with the class methods; ``times`` makes it a burst that switches
    itself off after that many requests.
    """

    latency: float = 0.0  # seconds added before the request goes on
    stall: bool = False  # take the request, never answer
    reset: bool = False  # answer with a TCP RST
    drip: float = 0.0  # send the answer one byte every `drip` seconds
    truncate: float | None = None  # send this fraction of the body...
    keep_length: bool = True  # ...under the full Content-Length, then close
    status: int | None = None  # answer this ourselves; the backend never sees it
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    times: int | None = None
    match: Match | None = None

    @classmethod
    def delay(cls, seconds: float, **kw: Any) -> Fault:
        return cls(latency=seconds, **kw)

    @classmethod
    def stalled(cls, **kw: Any) -> Fault:
        return cls(stall=True, **kw)

    @classmethod
    def rst(cls, **kw: Any) -> Fault:
        return cls(reset=True, **kw)

    @classmethod
    def dripping(cls, per_byte: float, **kw: Any) -> Fault:
        return cls(drip=per_byte, **kw)

    @classmethod
    def truncated(cls, fraction: float = 0.5, **kw: Any) -> Fault:
        """The connection closes part-way through the body (a broken transfer)."""
        return cls(truncate=fraction, keep_length=True, **kw)

    @classmethod
    def cut(cls, fraction: float = 0.5, **kw: Any) -> Fault:
        """A well-framed answer whose body is the first part of the real one."""
        return cls(truncate=fraction, keep_length=False, **kw)

    @classmethod
    def answer(
        cls,
        status: int,
        body: bytes | str = b"",
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> Fault:
        data = body.encode() if isinstance(body, str) else body
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        return cls(status=status, body=data, headers=tuple(hdrs.items()), **kw)

    @classmethod
    def throttle(
        cls, status: int = 429, retry_after: str | None = None, body: bytes | str = b"", **kw: Any
    ) -> Fault:
        """429/503 with an optional Retry-After (seconds, or ``http_date(...)``)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return cls.answer(status, body, headers, **kw)


def http_date(seconds_from_now: float) -> str:
    """An HTTP-date ``seconds_from_now`` ahead, for Retry-After."""
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


@dataclass(frozen=True)
class Seen:
    """A request the proxy read, and what it did with it."""

    at: float  # time.monotonic()
    request: Request
    action: str  # "forwarded", "answered", "stalled", "reset", "failed"
    faulted: bool = False  # a fault met it (a cut answer is "forwarded" and faulted)


class FaultProxy:
    """``127.0.0.1:<port>`` -> ``upstream_host:<upstream_port>``, with switchable faults."""

    def __init__(
        self,
        upstream_port: int,
        *,
        upstream_host: str = "127.0.0.1",
        raw: bool = False,
        server_ssl: ssl.SSLContext | None = None,
        upstream_ssl: ssl.SSLContext | None = None,
        latency: float = 0.0,
        history: int = 10_000,
    ) -> None:
        """``latency`` is paid by every request (raw: every client chunk), faults or not."""
        if raw and server_ssl is not None:
            raise ValueError("raw mode passes TLS through; it cannot terminate it")
        self.upstream = (upstream_host, upstream_port)
        self.raw = raw
        self.latency = latency
        self._server_ssl = server_ssl
        self._upstream_ssl = upstream_ssl
        self.port = free_port()
        self.connections = 0
        self._fault: Fault | None = None
        self._seen: deque[Seen] = deque(maxlen=history)
        self._overflowed = False  # counts over a truncated history would be wrong
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="faultproxy", daemon=True
        )
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(5)

    @classmethod
    def in_front_of(cls, url: str, **kw: Any) -> FaultProxy:
        """A proxy to the server at ``url`` (scheme://host:port)."""
        parts = urllib.parse.urlsplit(url)
        if parts.port is None:
            raise ValueError(f"{url!r} names no port")
        return cls(parts.port, upstream_host=parts.hostname or "127.0.0.1", **kw)

    # -- what the test uses -------------------------------------------------

    def url(self, scheme: str | None = None) -> str:
        scheme = scheme or ("https" if self._server_ssl else "http")
        return f"{scheme}://127.0.0.1:{self.port}"

    def set(self, fault: Fault | None) -> None:
        """Switch ``fault`` on for the requests (or connections) that start from now."""
        if (
            fault is not None
            and self.raw
            and (fault.match is not None or fault.status is not None or fault.truncate is not None)
        ):
            raise ValueError("raw mode cannot read requests: no match, status or truncate")
        with self._lock:
            self._fault = fault

    def clear(self) -> None:
        self.set(None)

    @contextlib.contextmanager
    def faulty(self, fault: Fault) -> Iterator[FaultProxy]:
        self.set(fault)
        try:
            yield self
        finally:
            self.clear()

    @property
    def forwarded(self) -> int:
        """Requests the backend answered through the proxy."""
        with self._lock:
            return self._counts.get("forwarded", 0)

    @property
    def open_connections(self) -> int:
        """Client connections open right now (a stalled one stays open until its client
        closes it)."""
        with self._lock:
            return len(self._tasks)

    def count(
        self, action: str | None = None, match: Match | None = None, *,
        faulted: bool | None = None,
    ) -> int:
        """Seen requests with this action (all when None) that ``match`` selects.

        ``faulted=True`` counts only those a fault met (a burst's ``times``
        included), ``False`` only the others.
        """
        return sum(
            1 for s in self.seen(match)
            if (action is None or s.action == action)
            and (faulted is None or s.faulted == faulted)
        )

    def seen(self, match: Match | None = None) -> list[Seen]:
        with self._lock:
            if self._overflowed:
                raise RuntimeError("more requests than the proxy's history: raise history=")
            return [s for s in self._seen if match is None or match(s.request)]

    def reset_counts(self) -> None:
        with self._lock:
            self._seen.clear()
            self._overflowed = False
            self._counts.clear()
            self.connections = 0

    def close(self) -> None:
        """Stop listening and drop every connection (stalled ones included)."""
        if not self._thread.is_alive():
            return

        async def stop() -> None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the loop ------------------------------------------------------------

    async def _start(self) -> asyncio.Server:
        handler = self._raw if self.raw else self._http

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            with self._lock:
                self.connections += 1
            try:
                await handler(reader, writer)
            except (OSError, asyncio.IncompleteReadError, h11.ProtocolError, ssl.SSLError):
                pass  # a peer went away mid-answer: that is what faults do
            except asyncio.CancelledError:
                pass  # close() ends held connections; the task ends here either way
            finally:
                self._tasks.discard(task)
                await _close(writer)

        return await asyncio.start_server(
            handle, "127.0.0.1", self.port, ssl=self._server_ssl, backlog=1024
        )

    def _take(self, request: Request | None) -> Fault | None:
        """The fault for this request (or raw connection); counts down a burst."""
        with self._lock:
            fault = self._fault
            if fault is None or (
                request is not None and fault.match is not None and not fault.match(request)
            ):
                return None
            if fault.times is not None:
                left = fault.times - 1
                self._fault = replace(fault, times=left) if left > 0 else None
            return fault

    def _record(self, request: Request, action: str, fault: Fault | None) -> None:
        with self._lock:
            self._overflowed |= len(self._seen) == self._seen.maxlen
            self._seen.append(Seen(time.monotonic(), request, action, fault is not None))
            self._counts[action] = self._counts.get(action, 0) + 1

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        host, port = self.upstream
        return await asyncio.open_connection(
            host, port, ssl=self._upstream_ssl, server_hostname=host if self._upstream_ssl else None
        )

    # -- raw mode: bytes only ---------------------------------------------------

    async def _raw(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        fault = self._take(None)
        if fault is not None and fault.stall:
            await _drain_until_eof(reader)
            return
        if fault is not None and fault.reset:
            await reader.read(1)  # the client has started its request
            _rst(writer)
            return
        up_reader, up_writer = await self._connect()
        latency = self.latency + (fault.latency if fault else 0.0)
        drip = fault.drip if fault else 0.0
        try:
            await asyncio.gather(
                _pump(reader, up_writer, delay=latency),
                _pump(up_reader, writer, drip=drip),
            )
        finally:
            await _close(up_writer)

    # -- HTTP mode ---------------------------------------------------------------

    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = h11.Connection(h11.SERVER)
        upstream: _Upstream | None = None
        try:
            while True:
                request = await _read_request(client, reader)
                if request is None:
                    return
                fault = self._take(request)
                latency = self.latency + (fault.latency if fault is not None else 0.0)
                if latency:
                    await asyncio.sleep(latency)
                if fault is not None and fault.reset:
                    self._record(request, "reset", fault)
                    _rst(writer)
                    return
                if fault is not None and fault.stall:
                    self._record(request, "stalled", fault)
                    await _drain_until_eof(reader)
                    return
                if fault is not None and fault.status is not None:
                    status, headers, body = fault.status, list(fault.headers), fault.body
                    self._record(request, "answered", fault)
                else:
                    if upstream is None:
                        upstream = _Upstream(*await self._connect())
                    try:
                        status, headers, body = await upstream.exchange(request)
                    except (OSError, h11.ProtocolError, asyncio.IncompleteReadError):
                        self._record(request, "failed", fault)
                        return  # closing the client's connection tells it so
                    self._record(request, "forwarded", fault)
                    if not upstream.reusable():
                        upstream.close()
                        upstream = None
                if not await self._answer(
                    client=client, writer=writer, request=request, status=status,
                    headers=headers, body=body, fault=fault,
                ):
                    return
                if client.our_state is not h11.DONE or client.their_state is not h11.DONE:
                    return
                client.start_next_cycle()
        finally:
            if upstream is not None:
                upstream.close()

    async def _answer(
        self,
        *,
        client: h11.Connection,
        writer: asyncio.StreamWriter,
        request: Request,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        fault: Fault | None,
    ) -> bool:
        """Write the answer (as the fault says); False when the connection must end."""
        kept = [(k, v) for k, v in headers if k.lower() not in _HOP]
        if fault is not None and fault.truncate is not None:
            part = body[: int(len(body) * fault.truncate)]
            if fault.keep_length:
                head = client.send(
                    h11.Response(
                        status_code=status, headers=[*kept, ("Content-Length", str(len(body)))]
                    )
                )
                writer.write(head + part)
                await writer.drain()
                return False  # the rest never comes: close
            body = part
        data = client.send(
            h11.Response(status_code=status, headers=[*kept, ("Content-Length", str(len(body)))])
        )
        if body and request.method != "HEAD":
            data += client.send(h11.Data(data=body))
        data += client.send(h11.EndOfMessage())
        if fault is not None and fault.drip:
            for i in range(len(data)):
                writer.write(data[i : i + 1])
                await writer.drain()
                await asyncio.sleep(fault.drip)
        else:
            writer.write(data)
            await writer.drain()
        return True


class _Upstream:
    """One kept-alive connection to the backend, spoken through h11."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = h11.Connection(h11.CLIENT)

    async def exchange(self, request: Request) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = [(k, v) for k, v in request.headers if k not in _HOP]
        if request.body or request.method in ("POST", "PUT", "PATCH"):
            headers.append(("content-length", str(len(request.body))))
        out = self.conn.send(h11.Request(method=request.method, target=request.target,
                                         headers=headers))
        if request.body:
            out += self.conn.send(h11.Data(data=request.body))
        out += self.conn.send(h11.EndOfMessage())
        self.writer.write(out)
        await self.writer.drain()
        response: h11.Response | None = None
        body = bytearray()
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await self.reader.read(65536))
            elif isinstance(event, h11.InformationalResponse):
                continue
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:  # ConnectionClosed before the answer ended
                raise OSError("the backend closed the connection mid-answer")
        assert response is not None
        pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers]
        return response.status_code, pairs, bytes(body)

    def reusable(self) -> bool:
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
            return True
        return False

    def close(self) -> None:
        self.writer.transport.abort()


async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader) -> Request | None:
    """The next whole request on the client's connection; None when it ends."""
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(65536))
        elif isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            return Request(
                method=head.method.decode("ascii"),
                target=head.target.decode("latin-1"),
                headers=tuple(
                    (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in head.headers
                ),
                body=bytes(body),
            )
        else:  # ConnectionClosed, PAUSED
            return None


async def _pump(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    delay: float = 0.0,
    drip: float = 0.0,
) -> None:
    try:
        while data := await reader.read(65536):
            if delay:
                await asyncio.sleep(delay)
            if drip:
                for i in range(len(data)):
                    writer.write(data[i : i + 1])
                    await writer.drain()
                    await asyncio.sleep(drip)
            else:
                writer.write(data)
                await writer.drain()
    finally:
        # Half-close would keep a TLS peer waiting: the pair ends together,
        # after what was read has been flushed.
        await _close(writer)


async def _drain_until_eof(reader: asyncio.StreamReader) -> None:
    """Hold the connection, reading and dropping, until the client gives up."""
    while await reader.read(65536):
        pass


async def _close(writer: asyncio.StreamWriter) -> None:
    """Flush and close (TLS: with its close_notify), then make sure the socket is gone.

    Waiting is bounded: a peer that went away must not keep the task, and a
    transport left to the garbage collector would warn (the suite makes
    warnings errors).
    """
    writer.close()
    with contextlib.suppress(OSError, TimeoutError, ssl.SSLError, asyncio.CancelledError):
        await asyncio.wait_for(writer.wait_closed(), 1.0)
    writer.transport.abort()


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a crashed server or a firewall does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
