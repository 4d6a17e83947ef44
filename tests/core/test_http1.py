"""The HTTP/1.1 client (provider.backends.http1) against real sockets that a test scripts.

Every case counts from the server's side (tests.support.rawserver): the
connections accepted, how many were open at once, the request lines that
arrived, whether the client closed a connection. The VaultTransport cases at
the end cover what the transport adds (redirects) and that a token never
reaches an exception's text, whatever failed.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import ssl
import struct
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from provider.backends import http1
from provider.backends.http1 import Answer, Origin, Pool
from provider.backends.vault import VaultSettings, VaultTls
from provider.backends.vault.config import VaultConnection
from provider.backends.vault.errors import translate
from provider.backends.vault.transport import MAX_REDIRECTS, VaultTransport
from provider.errors import Unavailable
from tests.support.openbao import TlsFiles, make_tls_files
from tests.support.rawserver import Conn, RawServer, ok, raw_server, serve_forever_with

T = TypeVar("T")


def make_pool(server: RawServer, **kw: Any) -> Pool:
    return Pool(Origin.of(server.url), ssl_context=None, **kw)


def run(pool: Pool, body: Callable[[], Awaitable[T]]) -> T:
    """``body()`` on a fresh loop; the pool's connections closed before the loop ends."""

    async def main() -> T:
        try:
            return await body()
        finally:
            pool.close()

    return asyncio.run(main())


async def until(flag: threading.Event, timeout: float = 5.0) -> None:
    """Wait (without blocking the loop) until a server thread sets ``flag``."""
    deadline = time.monotonic() + timeout
    while not flag.is_set():
        assert time.monotonic() < deadline, "the server never got there"
        await asyncio.sleep(0.01)


# -- keep-alive ---------------------------------------------------------------


def test_sequential_requests_use_one_connection() -> None:
    with raw_server(serve_forever_with(ok(b"hello"))) as server:
        pool = make_pool(server)

        async def body() -> list[Answer]:
            return [await pool.request("GET", f"/r{i}", {}) for i in range(5)]

        answers = run(pool, body)
    assert [(a.status, a.body) for a in answers] == [(200, b"hello")] * 5
    assert server.accepted == 1
    assert server.lines() == [f"GET /r{i} HTTP/1.1" for i in range(5)]


def test_concurrent_requests_stay_within_max_connections() -> None:
    def script(conn: Conn) -> None:
        while (request := conn.read_request()) is not None:
            time.sleep(0.05)  # long enough that every request waits for a connection
            conn.send(ok(request.split(b" ")[1]))

    with raw_server(script) as server:
        pool = make_pool(server, max_connections=3)

        async def body() -> list[Answer]:
            return await asyncio.gather(*(pool.request("GET", f"/r{i}", {}) for i in range(12)))

        answers = run(pool, body)
    assert [a.body for a in answers] == [f"/r{i}".encode() for i in range(12)]
    assert server.max_open == 3
    assert server.accepted == 3
    assert len(server.requests) == 12


# -- framing ------------------------------------------------------------------


def test_content_length_body_and_the_bytes_sent() -> None:
    with raw_server(serve_forever_with(ok(b'{"a":1}', "X-Extra: yes"))) as server:
        pool = make_pool(server)
        answer = run(pool, lambda: pool.request("POST", "/v1/x?y=1", {"X-Vault-Token": "t"},
                                                b'{"b":2}'))
    assert (answer.status, answer.body, answer.headers["x-extra"]) == (200, b'{"a":1}', "yes")
    assert server.requests == [
        f"POST /v1/x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nX-Vault-Token: t\r\n"
        'Content-Length: 7\r\n\r\n{"b":2}'.encode()
    ]


def test_chunked_body_in_several_chunks_keeps_the_connection() -> None:
    def script(conn: Conn) -> None:
        while conn.read_request() is not None:
            conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for chunk in (b"5\r\nhello\r\n", b"1\r\n \r\n", b"5\r\nworld\r\n", b"0\r\n\r\n"):
                time.sleep(0.01)  # each chunk in its own segment
                conn.send(chunk)

    with raw_server(script) as server:
        pool = make_pool(server)

        async def body() -> list[bytes]:
            return [(await pool.request("GET", "/c", {})).body for _ in range(2)]

        bodies = run(pool, body)
    assert bodies == [b"hello world"] * 2
    assert server.accepted == 1


def test_body_delimited_by_closing_the_connection() -> None:
    def script(conn: Conn) -> None:
        if conn.read_request() is not None:
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart one,")
            time.sleep(0.02)
            conn.send(b" part two")
        # returning closes the connection: the end of the body

    with raw_server(script) as server:
        pool = make_pool(server)

        async def body() -> list[bytes]:
            return [(await pool.request("GET", "/u", {})).body for _ in range(2)]

        bodies = run(pool, body)
    assert bodies == [b"part one, part two"] * 2
    assert server.accepted == 2


def test_connection_close_answer_is_not_reused() -> None:
    closed_by_client: list[bool] = []

    def script(conn: Conn) -> None:
        if conn.read_request() is not None:
            conn.send(ok(b"bye", "Connection: close"))
            # The server does not close: the client must, and must not send again here.
            closed_by_client.append(conn.wait_closed(5))

    with raw_server(script) as server:
        pool = make_pool(server)

        async def body() -> list[bytes]:
            return [(await pool.request("GET", f"/{i}", {})).body for i in range(2)]

        bodies = run(pool, body)
    assert bodies == [b"bye", b"bye"]
    assert server.accepted == 2
    assert server.lines() == ["GET /0 HTTP/1.1", "GET /1 HTTP/1.1"]
    assert closed_by_client == [True, True]


def test_204_without_a_body_keeps_the_connection() -> None:
    with raw_server(serve_forever_with(b"HTTP/1.1 204 No Content\r\n\r\n")) as server:
        pool = make_pool(server)

        async def body() -> list[Answer]:
            return [await pool.request("DELETE", "/d", {}) for _ in range(3)]

        answers = run(pool, body)
    assert [(a.status, a.body) for a in answers] == [(204, b"")] * 3
    assert server.accepted == 1


def test_interim_answers_are_skipped_for_the_final_one() -> None:
    interim = (b"HTTP/1.1 100 Continue\r\n\r\n"
               b"HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n")
    with raw_server(serve_forever_with(interim + ok(b"final"))) as server:
        pool = make_pool(server)

        async def body() -> list[Answer]:
            return [await pool.request("GET", "/", {}) for _ in range(2)]

        answers = run(pool, body)
    assert [(a.status, a.body, a.headers) for a in answers] == [
        (200, b"final", {"content-length": "5"})] * 2
    assert server.accepted == 1


# -- faults -------------------------------------------------------------------


def _answer_then_wait(answer: bytes, dropped: list[bool]) -> Callable[[Conn], None]:
    """Send ``answer`` to the first request; note whether the client then drops the connection."""

    def script(conn: Conn) -> None:
        if conn.read_request() is not None:
            conn.send(answer)
            dropped.append(conn.wait_closed(5))

    return script


def test_garbage_is_a_bad_answer_and_the_connection_is_dropped() -> None:
    dropped: list[bool] = []
    with raw_server(_answer_then_wait(b"\x00\x01garbage, not HTTP\r\n\r\n", dropped)) as server:
        pool = make_pool(server)
        with pytest.raises(http1.BadAnswer):
            run(pool, lambda: pool.request("GET", "/", {}))
    assert dropped == [True]


def test_closed_mid_body_is_remote_closed_after_receiving() -> None:
    def script(conn: Conn) -> None:
        if conn.read_request() is not None:
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)

    with raw_server(script) as server:
        pool = make_pool(server)
        with pytest.raises(http1.RemoteClosed) as caught:
            run(pool, lambda: pool.request("GET", "/", {}))
    assert caught.value.received is True
    assert server.accepted == 1  # a GET cut mid-answer is not sent again


def _chunks_forever(conn: Conn) -> None:
    conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(50):
        time.sleep(0.01)
        if not conn.send(b"190\r\n" + b"y" * 400 + b"\r\n"):
            return


@pytest.mark.parametrize("framing", ["declared", "chunked"])
def test_an_answer_over_max_answer_is_refused_and_dropped(framing: str) -> None:
    dropped: list[bool] = []

    def script(conn: Conn) -> None:
        if conn.read_request() is None:
            return
        if conn.index == 0:
            if framing == "declared":
                conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n")
            else:
                threading.Thread(target=_chunks_forever, args=(conn,), daemon=True).start()
            dropped.append(conn.wait_closed(5))
        else:
            conn.send(ok(b"small"))
            conn.read_request()

    with raw_server(script) as server:
        pool = make_pool(server, max_answer=1000, max_connections=1)

        async def body() -> bytes:
            with pytest.raises(http1.AnswerTooLarge) as caught:
                await pool.request("GET", "/big", {})
            assert caught.value.limit == 1000
            return (await pool.request("GET", "/small", {})).body

        assert run(pool, body) == b"small"
    assert dropped == [True]
    assert server.accepted == 2


def test_an_answer_nobody_asked_for_is_not_taken_and_drops_the_connection() -> None:
    """Two answers to one request in one segment: the second must neither change the
    first nor stay queued on the connection (where it would answer the next request)."""

    def script(conn: Conn) -> None:
        if conn.read_request() is None:
            return
        if conn.index == 0:
            conn.send(ok(b"mine") + ok(b"forged", "X-Injected: yes"))
            conn.wait_closed(5)
        else:
            conn.send(ok(b"fresh"))
            conn.read_request()

    with raw_server(script) as server:
        pool = make_pool(server)

        async def body() -> list[Answer]:
            return [await pool.request("GET", f"/{i}", {}) for i in range(2)]

        first, second = run(pool, body)
    assert (first.body, first.headers) == (b"mine", {"content-length": "4"})
    assert second.body == b"fresh"
    assert server.accepted == 2


def test_a_reset_mid_body_without_length_is_not_a_complete_answer() -> None:
    """A body delimited by the close ends at a clean close (FIN), never at a reset."""

    def script(conn: Conn) -> None:
        if conn.read_request() is not None:
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"da")
            time.sleep(0.05)
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.sock.close()  # linger 0: a reset

    with raw_server(script) as server:
        pool = make_pool(server)
        with pytest.raises(http1.RemoteClosed) as caught:
            run(pool, lambda: pool.request("GET", "/", {}))
    assert caught.value.received is True
    assert server.accepted == 1


def test_a_server_that_never_answers_times_out() -> None:
    dropped: list[bool] = []

    def script(conn: Conn) -> None:
        if conn.read_request() is not None:
            dropped.append(conn.wait_closed(5))

    with raw_server(script) as server:
        pool = make_pool(server, read_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            run(pool, lambda: pool.request("GET", "/", {}))
        waited = time.monotonic() - started
    assert 0.25 < waited < 3
    assert dropped == [True]


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose listener never accepts and whose backlog is full: a SYN gets no answer."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    fillers: list[socket.socket] = []
    try:
        for _ in range(16):  # until a connect goes unanswered
            try:
                fillers.append(socket.create_connection(("127.0.0.1", port), timeout=0.2))
            except TimeoutError:
                break
        else:
            pytest.skip("the backlog never filled: no way to make a connect hang offline")
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_connect_timeout(full_backlog: int) -> None:
    pool = Pool(Origin.of(f"http://127.0.0.1:{full_backlog}"), ssl_context=None,
                connect_timeout=0.3, read_timeout=30)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        run(pool, lambda: pool.request("GET", "/", {}))
    assert time.monotonic() - started < 3  # the connect timeout, not the read timeout


def test_refused_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    pool = Pool(Origin.of(f"http://127.0.0.1:{port}"), ssl_context=None)
    with pytest.raises(ConnectionRefusedError):
        run(pool, lambda: pool.request("GET", "/", {}))


# -- stale keep-alive connections ---------------------------------------------


def test_an_idle_connection_the_server_closed_is_replaced() -> None:
    closed = threading.Event()

    def script(conn: Conn) -> None:
        if conn.read_request() is not None:
            conn.send(ok(b"first" if conn.index == 0 else b"again"))
        if conn.index == 0:
            conn.sock.close()
            closed.set()
        else:
            conn.read_request()

    with raw_server(script) as server:
        pool = make_pool(server)

        async def body() -> list[bytes]:
            first = await pool.request("GET", "/a", {})
            await until(closed)
            await asyncio.sleep(0.05)
            return [first.body, (await pool.request("GET", "/b", {})).body]

        assert run(pool, body) == [b"first", b"again"]
    assert server.accepted == 2
    assert server.lines() == ["GET /a HTTP/1.1", "GET /b HTTP/1.1"]


def _close_on_second_request(conn: Conn) -> None:
    """Connection 0 answers once, then takes the next request and closes without answering
    (as a server closing an idle connection just as the client reuses it)."""
    if conn.index == 0:
        if conn.read_request() is not None:
            conn.send(ok(b"first"))
        conn.read_request()
        return
    while conn.read_request() is not None:
        conn.send(ok(b"fresh"))


def test_a_get_on_a_kept_connection_closed_before_any_answer_is_sent_again() -> None:
    with raw_server(_close_on_second_request) as server:
        pool = make_pool(server)

        async def body() -> list[bytes]:
            return [(await pool.request("GET", p, {})).body for p in ("/a", "/b")]

        assert run(pool, body) == [b"first", b"fresh"]
    assert server.accepted == 2
    assert server.lines() == ["GET /a HTTP/1.1", "GET /b HTTP/1.1", "GET /b HTTP/1.1"]


def test_a_post_on_a_kept_connection_closed_before_any_answer_is_not_sent_again() -> None:
    with raw_server(_close_on_second_request) as server:
        pool = make_pool(server)

        async def body() -> None:
            await pool.request("GET", "/a", {})
            with pytest.raises(http1.RemoteClosed) as caught:
                await pool.request("POST", "/login", {}, b"{}")
            assert caught.value.received is False

        run(pool, body)
        time.sleep(0.1)  # a re-sent POST would have arrived by now
    assert server.accepted == 1
    assert server.lines() == ["GET /a HTTP/1.1", "POST /login HTTP/1.1"]


def test_a_waiting_post_is_not_given_a_connection_the_server_just_closed() -> None:
    """The turn passes to a waiting request as the server closes the connection it answered
    on: the POST must go out on a fresh connection, not fail unsent."""

    def script(conn: Conn) -> None:
        if conn.index == 0:
            if conn.read_request() is not None:
                time.sleep(0.1)  # the POST is waiting for the only connection now
                conn.send(ok(b"first"))
            return  # and close right after answering
        while conn.read_request() is not None:
            conn.send(ok(b"posted"))

    with raw_server(script) as server:
        pool = make_pool(server, max_connections=1)

        async def body() -> list[bytes]:
            first = asyncio.create_task(pool.request("GET", "/a", {}))
            await asyncio.sleep(0.02)
            second = asyncio.create_task(pool.request("POST", "/b", {}, b"{}"))
            return [(await first).body, (await second).body]

        assert run(pool, body) == [b"first", b"posted"]
    assert server.lines() == ["GET /a HTTP/1.1", "POST /b HTTP/1.1"]
    assert server.accepted == 2


def test_a_fresh_connection_closed_before_any_answer_is_not_retried() -> None:
    def script(conn: Conn) -> None:
        conn.read_request()  # and close

    with raw_server(script) as server:
        pool = make_pool(server)
        with pytest.raises(http1.RemoteClosed):
            run(pool, lambda: pool.request("GET", "/", {}))
    assert server.accepted == 1


# -- cancellation -------------------------------------------------------------


def test_cancelling_a_request_drops_its_connection_and_frees_its_slot() -> None:
    got = threading.Event()
    dropped: list[bool] = []

    def script(conn: Conn) -> None:
        if conn.index == 0:
            if conn.read_request() is not None:
                got.set()
                dropped.append(conn.wait_closed(5))
                conn.send(ok(b"late"))  # would be read as the next answer if reused
            return
        while conn.read_request() is not None:
            conn.send(ok(b"next"))

    with raw_server(script) as server:
        pool = make_pool(server, max_connections=1)

        async def body() -> bytes:
            task = asyncio.create_task(pool.request("GET", "/slow", {}))
            await until(got)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return (await asyncio.wait_for(pool.request("GET", "/next", {}), 5)).body

        assert run(pool, body) == b"next"
    assert dropped == [True]
    assert server.accepted == 2
    assert server.lines() == ["GET /slow HTTP/1.1", "GET /next HTTP/1.1"]


def test_cancelling_a_request_waiting_for_a_connection_keeps_the_pool_working() -> None:
    release = threading.Event()

    def script(conn: Conn) -> None:
        while (request := conn.read_request()) is not None:
            if b"/slow" in request:
                release.wait(5)
            conn.send(ok(request.split(b" ")[1]))

    with raw_server(script) as server:
        pool = make_pool(server, max_connections=1)

        async def body() -> list[bytes]:
            slow = asyncio.create_task(pool.request("GET", "/slow", {}))
            await asyncio.sleep(0.05)
            waiting = asyncio.create_task(pool.request("GET", "/never", {}))
            await asyncio.sleep(0.05)
            waiting.cancel()
            release.set()
            after = await asyncio.wait_for(pool.request("GET", "/after", {}), 5)
            return [(await slow).body, after.body]

        assert run(pool, body) == [b"/slow", b"/after"]
    assert server.accepted == 1
    assert server.lines() == ["GET /slow HTTP/1.1", "GET /after HTTP/1.1"]


# -- header injection ---------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        pytest.param("/x", {"X-Vault-Token": "t\r\nX-Evil: 1"}, id="crlf-value"),
        pytest.param("/x", {"X-Vault-Namespace": "a\nb"}, id="lf-value"),
        pytest.param("/x", {"X-Vault-Namespace": "a\rb"}, id="cr-value"),
        pytest.param("/x", {"X-Evil\r\nX": "v"}, id="crlf-name"),
        pytest.param("/x HTTP/1.1\r\n\r\nGET /smuggled", {}, id="crlf-target"),
        pytest.param("/x\n", {}, id="lf-target"),
    ],
)
def test_a_line_break_in_a_header_or_target_sends_nothing(
    target: str, headers: dict[str, str],
) -> None:
    with raw_server(serve_forever_with(ok())) as server:
        pool = make_pool(server)

        async def body() -> int:
            with pytest.raises(ValueError, match="line break"):
                await pool.request("GET", target, headers)
            return (await pool.request("GET", "/good", {})).status

        assert run(pool, body) == 200
    assert server.accepted == 1
    assert server.lines() == ["GET /good HTTP/1.1"]
    assert b"Evil" not in b"".join(server.requests)


# -- closing --------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def server_tls(files: TlsFiles) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(files.server_cert, files.server_key)
    return ctx


def test_closing_a_tls_pool_closes_its_sockets_at_once(tls_files: TlsFiles) -> None:
    """As the provider shuts down: the pool closed, one turn of the loop, the loop closed.
    A socket still open then is a ResourceWarning (an error in this suite)."""
    dropped: list[bool] = []

    def script(conn: Conn) -> None:
        for _ in range(2):
            if conn.read_request() is not None:
                conn.send(ok(b"tls"))
        time.sleep(0.3)  # slow to answer a TLS close, as a busy server is
        dropped.append(conn.wait_closed(5))

    with raw_server(script, tls=server_tls(tls_files)) as server:
        pool = Pool(Origin.of(server.url.replace("127.0.0.1", "localhost")),
                    ssl_context=ssl.create_default_context(cafile=str(tls_files.ca_cert)))
        loop = asyncio.new_event_loop()
        try:
            answers = [loop.run_until_complete(pool.request("GET", "/", {})) for _ in range(2)]
            pool.close()
            loop.run_until_complete(asyncio.sleep(0))
        finally:
            loop.close()
        gc.collect()
    assert [a.body for a in answers] == [b"tls", b"tls"]
    assert server.accepted == 1
    assert dropped == [True]


# -- event loops --------------------------------------------------------------


def test_a_pool_works_from_a_second_event_loop() -> None:
    with raw_server(serve_forever_with(ok(b"hi"))) as server:
        pool = make_pool(server, max_connections=1)
        with warnings.catch_warnings():
            # asyncio cannot close a transport whose loop is closed: the first
            # loops' kept connections are closed when collected, with a
            # ResourceWarning (expected here; the provider runs one loop).
            warnings.simplefilter("ignore", ResourceWarning)
            first = asyncio.run(pool.request("GET", "/1", {}))
            second = asyncio.run(pool.request("GET", "/2", {}))
            third = run(pool, lambda: pool.request("GET", "/3", {}))
            gc.collect()
    assert [first.body, second.body, third.body] == [b"hi"] * 3
    assert server.lines() == ["GET /1 HTTP/1.1", "GET /2 HTTP/1.1", "GET /3 HTTP/1.1"]
    assert server.accepted == 3  # a connection belongs to the loop it was opened on


# -- VaultTransport: redirects --------------------------------------------------

TOKEN = "s.SECRETTOKEN0123456789abcdef"  # must never appear in an error


def _transport(address: str, tls: VaultTls | None = None, **settings: Any) -> VaultTransport:
    return VaultTransport(VaultConnection(address, "", tls or VaultTls()),
                          VaultSettings(**settings))


def _vault_run(transport: VaultTransport, coro: Awaitable[T]) -> T:
    async def main() -> T:
        try:
            return await coro
        finally:
            transport.close()

    return asyncio.run(main())


def _redirect(location: str, status: int = 307) -> bytes:
    return (f"HTTP/1.1 {status} Redirect\r\nLocation: {location}\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def test_a_redirect_loop_is_too_many_redirects_and_unavailable() -> None:
    with raw_server(serve_forever_with(_redirect("/v1/secret/data/x"))) as server:
        transport = _transport(server.url)
        with pytest.raises(http1.TooManyRedirects) as caught:
            _vault_run(transport, transport.request("GET", "secret/data/x", token=TOKEN))
    assert len(server.requests) == MAX_REDIRECTS + 1
    assert server.accepted == 1  # the same origin's kept connection
    mapped = translate(caught.value, subject="object 'x'", operation="vault.GET")
    assert isinstance(mapped, Unavailable) and mapped.code == "BackendUnavailable"


def test_a_redirect_from_https_to_http_is_refused(tls_files: TlsFiles) -> None:
    with raw_server(serve_forever_with(ok(b'{"leaked": true}'))) as plain, \
            raw_server(serve_forever_with(_redirect(f"{plain.url}/v1/x")),
                       tls=server_tls(tls_files)) as secure:
        transport = _transport(secure.url.replace("127.0.0.1", "localhost"),
                               VaultTls(ca_cert=str(tls_files.ca_cert)))
        with pytest.raises(http1.TooManyRedirects, match="https to http") as caught:
            _vault_run(transport, transport.request("GET", "secret/data/x", token=TOKEN))
    assert secure.lines() == ["GET /v1/secret/data/x HTTP/1.1"]
    assert plain.accepted == 0  # the token never went over plain HTTP
    _assert_no_token(caught.value)


def test_a_redirect_from_http_to_https_speaks_tls(tls_files: TlsFiles) -> None:
    with raw_server(serve_forever_with(ok(b'{"data": {"tls": true}}')),
                    tls=server_tls(tls_files)) as secure, \
            raw_server(serve_forever_with(_redirect(f"{secure.url}/v1/x"))) as plain:
        transport = _transport(plain.url, VaultTls(skip_verify=True))
        answer = _vault_run(transport, transport.request("GET", "x", token=TOKEN))
    assert answer == {"data": {"tls": True}}
    assert secure.lines() == ["GET /v1/x HTTP/1.1"]


def test_303_becomes_a_get_without_a_body() -> None:
    with raw_server(serve_forever_with(ok(b'{"data": {}}'))) as active, \
            raw_server(serve_forever_with(_redirect(f"{active.url}/v1/done", 303))) as standby:
        transport = _transport(standby.url)
        answer = _vault_run(transport, transport.request(
            "POST", "auth/k/login", token=TOKEN, body={"role": "r", "jwt": "j"}))
    assert answer == {"data": {}}
    assert standby.lines() == ["POST /v1/auth/k/login HTTP/1.1"]
    assert active.lines() == ["GET /v1/done HTTP/1.1"]
    followed = active.requests[0]
    assert followed.endswith(b"\r\n\r\n") and b"content-length" not in followed.lower()
    assert f"X-Vault-Token: {TOKEN}".encode() in followed


def test_307_keeps_the_method_body_and_token_to_another_origin() -> None:
    with raw_server(serve_forever_with(ok(b'{"data": {}}'))) as active, \
            raw_server(serve_forever_with(_redirect(f"{active.url}/v1/auth/k/login"))) as standby:
        transport = _transport(standby.url)
        _vault_run(transport, transport.request("POST", "auth/k/login", token=TOKEN,
                                                body={"role": "r"}))
    assert active.lines() == ["POST /v1/auth/k/login HTTP/1.1"]
    assert active.requests[0].endswith(b'\r\n\r\n{"role": "r"}')
    assert f"X-Vault-Token: {TOKEN}".encode() in active.requests[0]


# -- a token never in an exception ----------------------------------------------


def _silent(conn: Conn) -> None:
    if conn.read_request() is not None:
        conn.wait_closed(5)


def _cut(conn: Conn) -> None:
    if conn.read_request() is not None:
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{")


FAILURES: dict[str, tuple[Callable[[Conn], None], type[BaseException]]] = {
    "garbage": (serve_forever_with(b"\x00garbage " + TOKEN.encode() + b"\r\n\r\n"),
                http1.BadAnswer),
    "cut": (_cut, http1.RemoteClosed),
    "too-large": (serve_forever_with(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n"),
                  http1.AnswerTooLarge),
    "silent": (_silent, TimeoutError),
    "closed": (lambda conn: bool(conn.read_request()), http1.RemoteClosed),
    "redirect-loop": (serve_forever_with(_redirect("/v1/secret/data/x")),
                      http1.TooManyRedirects),
}


def _assert_no_token(exc: BaseException) -> None:
    seen: BaseException | None = exc
    while seen is not None:  # the whole chain a log line would show
        assert TOKEN not in str(seen) and TOKEN not in repr(seen), repr(seen)
        seen = seen.__cause__ or seen.__context__
    mapped = translate(exc, subject="object 'x'", operation="vault.GET")
    assert TOKEN not in mapped.message and TOKEN not in str(mapped)


@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_token_is_never_in_the_exception(failure: str) -> None:
    script, expected = FAILURES[failure]
    with raw_server(script) as server:
        transport = _transport(server.url, read_timeout=0.3)
        with pytest.raises(expected) as caught:
            _vault_run(transport, transport.request("GET", "secret/data/x", token=TOKEN))
    assert server.accepted >= 1 and TOKEN.encode() in server.requests[0]  # it was sent
    _assert_no_token(caught.value)


def test_a_token_is_never_in_the_exception_when_refused_or_injected() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    transport = _transport(f"http://127.0.0.1:{port}")
    with pytest.raises(ConnectionRefusedError) as refused:
        _vault_run(transport, transport.request("GET", "secret/data/x", token=TOKEN))
    _assert_no_token(refused.value)
    transport = _transport(f"http://127.0.0.1:{port}")
    with pytest.raises(ValueError, match="line break") as injected:
        _vault_run(transport, transport.request("GET", "secret/data/x", token=TOKEN + "\r\nX: 1"))
    _assert_no_token(injected.value)


def test_a_token_is_never_in_the_exception_for_a_character_outside_latin1() -> None:
    """A namespace HTTP cannot carry: the request head (token included) is not kept in
    the exception, as UnicodeEncodeError keeps the whole text it failed on."""
    with raw_server(serve_forever_with(ok())) as server:
        transport = VaultTransport(VaultConnection(server.url, "\u20acquipe", VaultTls()),
                                   VaultSettings())
        with pytest.raises(ValueError, match="Latin-1") as caught:
            _vault_run(transport, transport.request("GET", "secret/data/x", token=TOKEN))
    assert server.accepted == 0
    _assert_no_token(caught.value)



@pytest.mark.parametrize("url", ["https://user:s3cret@proxy.internal:3128",
                                 "http://user:s3cret@:3128", "http://proxy.internal:99999"])
def test_an_unusable_proxy_is_the_deployment_at_fault_and_never_quoted(url: str) -> None:
    from provider.backends.http1 import Proxy
    from provider.errors import InvalidRequest

    with pytest.raises(InvalidRequest) as caught:
        Proxy.of(url)
    assert caught.value.code == "ProviderMisconfigured"
    assert "HTTPS_PROXY" in caught.value.message
    for shown in (caught.value.message, str(caught.value), repr(caught.value)):
        assert "s3cret" not in shown and "user" not in shown
