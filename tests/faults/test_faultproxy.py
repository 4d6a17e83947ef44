"""The fault proxy does each fault it claims, and nothing when none is set.

Why: the fault suite is only as good as its instrument; a proxy that quietly
stopped stalling or resetting would turn every case into a plain mount that
passes. A small stdlib HTTP server stands upstream; a plain http.client talks
through the proxy and sees each fault as a client would.
"""

from __future__ import annotations

import email.utils
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support import azure_standin
from tests.support.faultproxy import Fault, FaultProxy, http_date

BODY = b'{"value": "' + b"x" * 200 + b'"}'


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return None

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(201)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _serve(ctx: ssl.SSLContext | None = None) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    if ctx is not None:
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    yield from _serve()


@pytest.fixture
def proxy(upstream: int) -> Iterator[FaultProxy]:
    with FaultProxy(upstream) as p:
        yield p


@contextmanager
def get(
    proxy: FaultProxy, path: str = "/x", timeout: float = 5.0
) -> Iterator[http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=timeout)
    try:
        conn.request("GET", path)
        yield conn.getresponse()
    finally:
        conn.close()


def body(proxy: FaultProxy, path: str = "/x") -> tuple[int, bytes]:
    with get(proxy, path) as answer:
        return answer.status, answer.read()


def test_passes_requests_through_and_counts_them(proxy: FaultProxy) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    for _ in range(3):  # one kept-alive connection
        conn.request("GET", "/a")
        answer = conn.getresponse()
        assert (answer.status, answer.read()) == (200, BODY)
    conn.request("POST", "/echo", body=b"hello")
    answer = conn.getresponse()
    assert (answer.status, answer.read()) == (201, b"hello")
    conn.close()
    assert proxy.forwarded == 4 and proxy.connections == 1
    assert [s.request.target for s in proxy.seen()] == ["/a", "/a", "/a", "/echo"]


def test_counts_by_path_and_aws_operation(proxy: FaultProxy) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    for path, body, headers in [
        ("/v1/secret/data/a?version=2", b"", {}),
        ("/", b"{}", {"X-Amz-Target": "secretsmanager.GetSecretValue"}),
        ("/", b"Version=2011-06-15&Action=AssumeRoleWithWebIdentity&RoleArn=x", {}),
    ]:
        conn.request("POST", path, body=body, headers=headers)
        conn.getresponse().read()
    conn.close()
    assert proxy.count(match=lambda r: r.path == "/v1/secret/data/a") == 1
    assert [s.request.operation for s in proxy.seen()] == [
        "", "GetSecretValue", "AssumeRoleWithWebIdentity"
    ]
    assert proxy.count("forwarded", lambda r: r.operation == "GetSecretValue") == 1


def test_a_count_past_the_history_is_an_error_not_a_wrong_number(upstream: int) -> None:
    with FaultProxy(upstream, history=2) as small:
        for _ in range(3):
            assert body(small) == (200, BODY)
        assert small.forwarded == 3
        with pytest.raises(RuntimeError, match="history"):
            small.count()
        small.reset_counts()
        assert body(small) == (200, BODY)
        assert small.count() == 1


def test_fixed_latency_stays_whatever_the_fault(upstream: int) -> None:
    with FaultProxy.in_front_of(f"http://127.0.0.1:{upstream}", latency=0.2) as far:
        for fault in (None, Fault.answer(503, times=1)):
            far.set(fault)
            started = time.monotonic()
            with get(far) as answer:
                answer.read()
            assert time.monotonic() - started >= 0.2
        assert far.count("answered") == 1 and far.forwarded == 1


def test_latency(proxy: FaultProxy) -> None:
    proxy.set(Fault.delay(0.3))
    started = time.monotonic()
    assert body(proxy) == (200, BODY)
    assert time.monotonic() - started >= 0.3


def test_stall_never_answers(proxy: FaultProxy) -> None:
    proxy.set(Fault.stalled())
    with pytest.raises(TimeoutError), get(proxy, timeout=0.5) as answer:
        answer.read()
    assert proxy.count("stalled") == 1 and proxy.forwarded == 0


def test_reset_is_a_tcp_rst(proxy: FaultProxy) -> None:
    proxy.set(Fault.rst())
    with pytest.raises(ConnectionResetError), get(proxy) as answer:
        answer.read()


def test_drip_sends_one_byte_at_a_time(proxy: FaultProxy) -> None:
    proxy.set(Fault.dripping(0.002))
    started = time.monotonic()
    assert body(proxy) == (200, BODY)
    # Headers and body: several hundred bytes, each after 2 ms.
    assert time.monotonic() - started >= 0.002 * len(BODY)


def test_truncated_closes_inside_the_body(proxy: FaultProxy) -> None:
    proxy.set(Fault.truncated(0.5))
    with get(proxy) as answer:
        assert answer.getheader("Content-Length") == str(len(BODY))
        with pytest.raises(http.client.IncompleteRead):
            answer.read()


def test_cut_is_well_framed_but_short(proxy: FaultProxy) -> None:
    proxy.set(Fault.cut(0.5))
    assert body(proxy) == (200, BODY[: len(BODY) // 2])


def test_counts_the_requests_a_fault_met(proxy: FaultProxy) -> None:
    proxy.set(Fault.cut(0.5, times=1))  # forwarded, so only `faulted` tells it apart
    assert body(proxy) == (200, BODY[: len(BODY) // 2])
    assert body(proxy) == (200, BODY)
    assert proxy.forwarded == 2
    assert proxy.count(faulted=True) == 1 and proxy.count(faulted=False) == 1
    assert [s.faulted for s in proxy.seen()] == [True, False]


def test_throttle_burst_with_retry_after_then_off(proxy: FaultProxy) -> None:
    date = http_date(2)
    proxy.set(Fault.throttle(503, date, body='{"message": "busy"}', times=2))
    for _ in range(2):
        with get(proxy) as answer:
            assert answer.status == 503 and answer.getheader("Retry-After") == date
            assert answer.read() == b'{"message": "busy"}'
    assert email.utils.parsedate_to_datetime(date).timestamp() > time.time()
    assert body(proxy) == (200, BODY)  # the burst switched itself off
    assert proxy.count("answered") == 2 and proxy.forwarded == 1


def test_match_picks_requests(proxy: FaultProxy) -> None:
    proxy.set(Fault.answer(200, "{}", match=lambda r: r.target == "/login"))
    assert body(proxy, "/login") == (200, b"{}")
    assert body(proxy, "/read") == (200, BODY)


def test_raw_mode_passes_tls_through(tmp_path: Path) -> None:
    pki = azure_standin.TestPki(tmp_path)
    client = ssl.create_default_context(cafile=str(pki.ca_file))
    for port in _serve(pki.server_context()):
        with FaultProxy(port, raw=True) as raw:
            raw.set(Fault.delay(0.2))
            started = time.monotonic()
            conn = http.client.HTTPSConnection("127.0.0.1", raw.port, context=client, timeout=5)
            conn.request("GET", "/x")
            assert conn.getresponse().read() == BODY
            conn.close()
            assert time.monotonic() - started >= 0.2
            with pytest.raises(ValueError):
                raw.set(Fault.answer(503))


def test_tls_terminated_with_the_test_ca(tmp_path: Path) -> None:
    pki = azure_standin.TestPki(tmp_path)
    client = ssl.create_default_context(cafile=str(pki.ca_file))
    for port in _serve(pki.server_context()):
        with FaultProxy(port, server_ssl=pki.server_context(), upstream_ssl=client) as tls:
            tls.set(Fault.throttle(429, "1", times=1))
            conn = http.client.HTTPSConnection("127.0.0.1", tls.port, context=client, timeout=5)
            conn.request("GET", "/x")
            first = conn.getresponse()
            assert (first.status, first.getheader("Retry-After")) == (429, "1")
            first.read()
            conn.request("GET", "/x")
            assert conn.getresponse().read() == BODY
            conn.close()


def test_close_drops_held_connections(upstream: int) -> None:
    proxy = FaultProxy(upstream)
    proxy.set(Fault.stalled())
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    sock.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.1)
    proxy.close()
    assert sock.recv(10) == b""  # closed by the proxy, not left hanging
    sock.close()
