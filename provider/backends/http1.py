"""A small asyncio HTTP/1.1 client: keep-alive connections to one origin, on the event loop.

Why not urllib3 on the backend's threads, as before: for a 50-object Vault
mount, each read cost ~300-450 us of CPU that way (bench/http_cost.py):
http.client parsing headers through the email package, urllib3's bookkeeping,
and eight threads taking turns at the GIL to do it. Here a request is one
write, and the answer is parsed by httptools (Node's llhttp in C, the parser
uvicorn uses) as it arrives, on the loop itself: ~80-100 us, TLS included.
aiohttp, the asyncio client library, cost ~120-165 us per read in the same
runs (reading bytes only, where this figure includes Vault's JSON) and adds
11.6 MiB of imports against httptools' 0.3: with it, Vault's after-load
growth would have passed issue 16's 20 MiB.

What this module does is only HTTP: it frames a request, keeps at most
``max_connections`` connections per origin and reuses them, times out a
connect and an answer, speaks to a proxy (absolute-form requests for http,
a CONNECT tunnel for https) and reads an answer up to ``max_answer`` bytes. It
follows no redirect and decides nothing about statuses: the caller does
(``provider.backends.vault.transport``). What it raises is the standard
library's (``ConnectionError``, ``TimeoutError``, ``ssl.SSLError``, ``OSError``)
or one of the classes below, so a backend's ``errors.translate`` maps them.

Every connection belongs to the event loop it was opened on; a pool used from
another loop (tests run one loop per provider) opens new ones.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, cast
from urllib.parse import unquote, urlsplit

import httptools

from provider.backends.proxies import proxy_for
from provider.codes import ErrorCode
from provider.errors import InvalidRequest


class RemoteClosed(ConnectionError):
    """The server (or something in between) closed the connection before a full answer."""

    def __init__(self, *, received: bool) -> None:
        super().__init__("the connection closed before a complete answer")
        self.received = received  # some of the answer had arrived


class BadAnswer(ConnectionError):
    """The bytes that came back are not an HTTP/1.1 answer (httptools refused them)."""


class AnswerTooLarge(Exception):
    """The answer is longer than the pool's ``max_answer`` bytes: it was not read."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the answer is longer than {limit} bytes")
        self.limit = limit


class ProxyRefused(ConnectionError):
    """The proxy answered a CONNECT with something other than 2xx."""

    def __init__(self, status: str) -> None:
        super().__init__(f"the proxy refused the tunnel ({status})")


class TooManyRedirects(Exception):
    """For callers that follow redirects: a loop, or a redirect from https to http."""


class Origin(NamedTuple):
    """Where requests go: scheme, host and port (``netloc`` as the Host header says it)."""

    scheme: str
    host: str
    port: int
    netloc: str

    @classmethod
    def of(cls, url: str) -> Origin:
        """The origin of ``url``; ValueError if it has no usable host or port."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("not an http(s) URL with a host")
        port = parts.port or (443 if parts.scheme == "https" else 80)  # ValueError if bad
        host = parts.hostname
        netloc = f"[{host}]" if ":" in host else host
        default = 443 if parts.scheme == "https" else 80
        return cls(parts.scheme, host, port, netloc if port == default else f"{netloc}:{port}")


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer: its status, its headers (names lower-cased) and its body."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, kw_only=True)
class Proxy:
    """An HTTP proxy to go through (its ``Proxy-Authorization`` from the URL's user info)."""

    origin: Origin
    authorization: str = ""

    @classmethod
    def of(cls, url: str) -> Proxy:
        """The proxy ``url`` names (from the provider's environment: HTTPS_PROXY & co).

        Not one this client can use (an https:// proxy, no host, a bad port)
        is the provider's deployment at fault, not the class: InvalidRequest
        (ProviderMisconfigured), and the URL, which may hold credentials, is
        never quoted.
        """
        parts = urlsplit(url if "://" in url else "http://" + url)
        try:
            if parts.scheme != "http":
                raise ValueError("not http")
            origin = Origin.of(parts._replace(path="", query="", fragment="").geturl())
        except ValueError:
            raise InvalidRequest(
                "the proxy named by the provider's environment (HTTPS_PROXY, HTTP_PROXY or "
                "ALL_PROXY) is not usable: only an http:// proxy URL with a host is supported",
                code=ErrorCode.ProviderMisconfigured,
            ) from None
        authorization = ""
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        return cls(origin=origin, authorization=authorization)


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its answer parsed as it arrives."""

    def __init__(self, max_answer: int) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._max_answer = max_answer
        self._parser: Any = None
        self._waiter: asyncio.Future[Answer] | None = None
        self._headers: dict[str, str] = {}
        self._name = ""
        self._body: list[bytes] = []
        self._size = 0
        self._received = False
        self._headers_done = False
        self._complete = False
        self._keep_alive = False
        self._tunnel: bytearray | None = None  # collecting a CONNECT answer

    # -- asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not asyncio.Transport subclasses).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._tunnel is not None:
            self._tunnel += data
            if b"\r\n\r\n" in self._tunnel:
                self._done(Answer(0, {}, bytes(self._tunnel)))
            return
        if self._waiter is None or self._waiter.done():
            self._drop()  # bytes nobody asked for: the connection cannot be trusted
            return
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            # A callback refused: the answer is too long (the waiter holds why),
            # or a second answer began.
            self._drop()
        except httptools.HttpParserError as exc:
            self._fail(BadAnswer(f"not an HTTP answer ({type(exc).__name__})"))

    def eof_received(self) -> bool | None:
        return None  # close the transport: connection_lost decides

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._headers_done and self._until_close() and exc is None:
            self._complete_answer()  # delimited by a clean close (a reset cuts it short)
        elif isinstance(exc, ssl.SSLError | OSError) and not isinstance(exc, ConnectionError):
            waiter.set_exception(exc)
        else:
            waiter.set_exception(RemoteClosed(received=self._received))

    # -- httptools callbacks ------------------------------------------------

    def on_message_begin(self) -> None:
        if self._waiter is None or self._waiter.done():
            # A second answer in the bytes of the first: nobody asked for it, and
            # kept it would answer the next request. Stops the parser (dropped).
            raise ValueError("an answer nobody asked for")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._name = name.decode("latin-1").lower()
        self._headers[self._name] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._headers_done = True
        length = self._headers.get("content-length", "")
        if length.isdigit() and int(length) > self._max_answer:
            self._too_large()

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._max_answer:
            self._too_large()
        self._body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self._parser.get_status_code() < 200:
            # An interim answer (100 Continue, 103 Early Hints): the final one follows.
            self._reset()
            self._received = True
            return
        # llhttp answers should_keep_alive() only until the message is done.
        self._keep_alive = bool(self._parser.should_keep_alive())
        self._complete = True
        self._complete_answer()

    # -- the pool's side ----------------------------------------------------

    async def exchange(self, request: bytes) -> Answer:
        """Send ``request`` and wait for its whole answer."""
        transport = self.transport
        if transport is None or self.closed or transport.is_closing():
            raise RemoteClosed(received=False)
        self._reset()
        self._parser = httptools.HttpResponseParser(self)
        waiter: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        transport.write(request)
        return await waiter

    async def tunnel(self, request: bytes) -> bytes:
        """Send a CONNECT ``request`` to the proxy; the proxy's answer head."""
        assert self.transport is not None
        self._reset()
        self._tunnel = bytearray()
        waiter: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        self.transport.write(request)
        try:
            return (await waiter).body
        finally:
            self._tunnel = None

    @property
    def reusable(self) -> bool:
        """The last answer was read whole and the server keeps the connection open."""
        return (
            self._complete and not self.closed and self.transport is not None
            and not self.transport.is_closing() and self._keep_alive
        )

    def close(self) -> None:
        """Close an idle connection (nothing is left to write or to read on it).

        Aborted rather than closed: a TLS transport's close() waits for the
        server's close_notify, a round trip that a loop stopping right after
        (the provider's shutdown) never runs, leaving the socket open.
        """
        self.closed = True
        if self.transport is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed already
                self.transport.abort()

    def _drop(self) -> None:
        self.closed = True
        if self.transport is not None:
            with contextlib.suppress(RuntimeError):
                self.transport.abort()

    # -- internals ----------------------------------------------------------

    def _reset(self) -> None:
        self._headers = {}
        self._body = []
        self._size = 0
        self._received = False
        self._headers_done = False
        self._complete = False
        self._keep_alive = False

    def _until_close(self) -> bool:
        return ("content-length" not in self._headers
                and "chunked" not in self._headers.get("transfer-encoding", "").lower())

    def _complete_answer(self) -> None:
        self._done(Answer(self._parser.get_status_code(), self._headers, b"".join(self._body)))

    def _done(self, answer: Answer) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(answer)

    def _fail(self, exc: BaseException) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self._drop()

    def _too_large(self) -> None:
        self._fail(AnswerTooLarge(self._max_answer))
        raise ValueError("answer too large")  # stops the parser (HttpParserCallbackError)


# Methods sent again on a fresh connection when a kept one turns out closed
# before any answer came (the server closed it while idle): they change nothing.
# (No HEAD: the parser, not told the method, would wait for a body.)
_IDEMPOTENT = frozenset({"GET", "LIST", "OPTIONS"})


class Pool:
    """Keep-alive connections to one origin: at most ``max_connections`` open at once."""

    def __init__(
        self,
        origin: Origin,
        *,
        ssl_context: ssl.SSLContext | None,
        server_hostname: str = "",
        proxy: Proxy | None = None,
        max_connections: int = 32,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
        max_answer: int = 16 * 1024 * 1024,
    ) -> None:
        self.origin = origin
        self._ssl = ssl_context if origin.scheme == "https" else None
        self._server_hostname = server_hostname or origin.host
        self._proxy = proxy
        self._max = max(1, max_connections)
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_answer = max_answer
        self._idle: list[_Connection] = []
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        # Connections waiting for an answer -> when it is late (see _sweep).
        self._busy: dict[_Connection, float] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._sweep_every = min(1.0, max(0.01, read_timeout / 4))
        # Through a proxy, a plain-http request names the whole URL.
        absolute = proxy is not None and origin.scheme == "http"
        self._target_prefix = f"http://{origin.netloc}" if absolute else ""
        self._fixed_headers = f"Host: {origin.netloc}\r\n"
        if absolute and proxy is not None and proxy.authorization:
            self._fixed_headers += f"Proxy-Authorization: {proxy.authorization}\r\n"

    async def request(
        self, method: str, target: str, headers: dict[str, str], body: bytes | None = None,
    ) -> Answer:
        """``method target`` (an origin-form path and query) with ``headers``; its answer.

        At most ``read_timeout`` seconds for the answer (TimeoutError). A
        connection whose request failed or was cancelled is closed, never reused.
        """
        head = self._head(method, target, headers, body)
        data = head + body if body else head
        for attempt in (1, 2):
            connection, reused = await self._checkout()
            ok = False
            self._busy[connection] = time.monotonic() + self._read_timeout
            self._sweep_soon()
            try:
                answer = await connection.exchange(data)
                ok = True
                return answer
            except RemoteClosed as exc:
                if not (reused and attempt == 1 and not exc.received and method in _IDEMPOTENT):
                    raise
            finally:
                del self._busy[connection]
                self._checkin(connection, keep=ok and connection.reusable)
        raise AssertionError("unreachable")

    def _sweep_soon(self) -> None:
        """Arm the pool's one read-timeout timer, if it is not armed.

        One timer per pool that looks at every busy connection, rather than a
        timer per request (a per-request ``asyncio.timeout`` and its heap work
        were ~4 % of a 50-object Vault mount's CPU): an answer is late by at
        most a quarter of ``read_timeout`` (and a second) more than it may be.
        """
        if self._sweeper is None and self._loop is not None:
            self._sweeper = self._loop.call_later(self._sweep_every, self._sweep)

    def _sweep(self) -> None:
        """Fail, with TimeoutError, every exchange that has waited longer than read_timeout."""
        self._sweeper = None
        now = time.monotonic()
        for connection, due in list(self._busy.items()):
            if now >= due:
                connection._fail(TimeoutError(f"no answer within {self._read_timeout:g} s"))
        if self._busy:
            self._sweep_soon()

    def close(self) -> None:
        """Close every idle connection now, and every busy one when its answer is in."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    # -- connections --------------------------------------------------------

    def _head(self, method: str, target: str, headers: dict[str, str], body: bytes | None) -> bytes:
        lines = [f"{method} {self._target_prefix}{target} HTTP/1.1\r\n", self._fixed_headers]
        lines.extend(f"{name}: {value}\r\n" for name, value in headers.items())
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}\r\n")
        lines.append("\r\n")
        text = "".join(lines)
        # Every line break is one this method put there: a value holding one
        # would smuggle a header or a second request.
        breaks = len(lines) + self._fixed_headers.count("\n") - 1
        if text.count("\n") != breaks or text.count("\r") != breaks:
            raise ValueError("a header or the target holds a line break")
        try:
            return text.encode("latin-1")
        except UnicodeEncodeError:
            pass  # raised below, outside: UnicodeEncodeError keeps the whole head, tokens too
        raise ValueError("a header or the target holds a character outside Latin-1")

    async def _checkout(self) -> tuple[_Connection, bool]:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # Connections of another (finished) loop cannot be used on this one.
            self._idle.clear()
            self._open = 0
            self._waiters.clear()
            self._busy.clear()
            self._sweeper = None  # its timer belonged to the other loop
            self._loop = loop
        if (kept := self._kept()) is not None:
            return kept, True
        while self._open >= self._max:
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # it was our turn: pass it on
                raise
            if (kept := self._kept()) is not None:  # one the server closed is not it
                return kept, True
        self._open += 1
        try:
            return await self._connect(loop), False
        except BaseException:
            self._open -= 1
            self._wake()
            raise

    def _kept(self) -> _Connection | None:
        """An idle connection still open (those the server closed meanwhile are let go)."""
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and connection.transport is not None \
                    and not connection.transport.is_closing():
                return connection
            self._open -= 1
        return None

    def _checkin(self, connection: _Connection, *, keep: bool) -> None:
        if keep and not self._closed:
            self._idle.append(connection)
        else:
            if connection.reusable:
                connection.close()  # the pool is closed: a clean goodbye
            else:
                connection._drop()  # mid-answer, failed or cancelled: never reused
            self._open -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        max_answer = self._max_answer
        async with asyncio.timeout(self._connect_timeout):
            if self._proxy is None:
                _t, connection = await loop.create_connection(
                    lambda: _Connection(max_answer), self.origin.host, self.origin.port,
                    ssl=self._ssl, server_hostname=self._server_hostname if self._ssl else None,
                )
                return connection
            proxy = self._proxy.origin
            _t, connection = await loop.create_connection(
                lambda: _Connection(max_answer), proxy.host, proxy.port,
            )
            if self._ssl is None:
                return connection
            try:
                await self._open_tunnel(loop, connection)
            except BaseException:
                connection._drop()
                raise
            return connection

    async def _open_tunnel(self, loop: asyncio.AbstractEventLoop, connection: _Connection) -> None:
        """CONNECT through the proxy, then TLS with the origin inside the tunnel."""
        assert self._proxy is not None and self._ssl is not None
        if ":" in self.origin.host:
            target = f"[{self.origin.host}]:{self.origin.port}"
        else:
            target = f"{self.origin.host}:{self.origin.port}"
        head = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
        if self._proxy.authorization:
            head += f"Proxy-Authorization: {self._proxy.authorization}\r\n"
        said = await connection.tunnel((head + "\r\n").encode("latin-1"))
        status = said.split(b"\r\n", 1)[0].decode("latin-1", "replace")
        parts = status.split()
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].startswith("2"):
            raise ProxyRefused(" ".join(parts[1:3])[:40] or "no status")
        assert connection.transport is not None
        tls = await loop.start_tls(
            connection.transport, connection, self._ssl, server_hostname=self._server_hostname,
        )
        assert tls is not None
        connection.transport = tls


class Pools:
    """Keep-alive pools by origin, shared by every identity, for a backend that talks to many hosts.

    The token or signature travels with each request, never with a pool, so
    sharing connections never shares an identity. At most ``max_pools``
    origins are kept; the least recently used beyond that is closed. The TLS
    context (``ssl_context``, reading CA files) is made at the first https
    origin; the proxy is chosen per origin from the environment
    (``provider.backends.proxies``). Used on the event loop only: no lock.
    """

    def __init__(
        self,
        name: str,
        *,
        ssl_context: Callable[[], ssl.SSLContext],
        max_connections: int,
        connect_timeout: float,
        read_timeout: float,
        max_pools: int = 64,
    ) -> None:
        from provider.cache import Cache

        self._make_context = ssl_context
        self._context: ssl.SSLContext | None = None
        self._max_connections = max_connections
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._pools: Cache[Origin, Pool] = Cache(
            name, max_entries=max_pools, on_evict=lambda _o, pool: pool.close()
        )

    def get(self, origin: Origin) -> Pool:
        """``origin``'s pool, made on first use."""
        pool = self._pools.peek(origin)
        if pool is not None:
            return pool
        context = None
        if origin.scheme == "https":
            if self._context is None:
                self._context = self._make_context()
            context = self._context
        proxy = proxy_for(f"{origin.scheme}://{origin.netloc}")
        return self._pools.put(origin, Pool(
            origin,
            ssl_context=context,
            proxy=Proxy.of(proxy) if proxy else None,  # InvalidRequest: not an http:// proxy
            max_connections=self._max_connections,
            connect_timeout=self._connect_timeout,
            read_timeout=self._read_timeout,
        ))

    def close(self) -> None:
        """Close every pool (idle connections now, busy ones when their answer is in)."""
        self._pools.clear()
