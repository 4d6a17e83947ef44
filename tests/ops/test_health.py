"""Health: the gRPC health service on the socket; HTTP liveness goes through the socket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from provider.health import Probes, parse_addr
from tests.ops.conftest import http_get
from tests.support.running import RunningProvider, settings_for


@pytest.fixture
def running(tmp_path: Path) -> Iterator[RunningProvider]:
    settings = settings_for(
        tmp_path, {}, health_addr="127.0.0.1:0", metrics_addr="localhost:0", also_serve=("aws",)
    )
    with RunningProvider(settings) as provider:
        # Short, so a wedged server fails the probe quickly in these tests.
        provider.app.probes.check_timeout = 0.5
        yield provider


def _health(socket: Path, service: str) -> int:
    with grpc.insecure_channel(f"unix:{socket}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        return int(reply.status)


def test_grpc_health_service_on_every_socket(running: RunningProvider) -> None:
    for name in ("polysecret", "aws"):
        for service in ("", "v1alpha1.CSIDriverProvider"):
            assert _health(running.socket(name), service) == health_pb2.HealthCheckResponse.SERVING


def test_probes_answer_ok_when_serving(running: RunningProvider) -> None:
    port = running.app.port("/healthz")
    assert http_get(port, "/healthz") == (200, "ok\n")
    assert http_get(port, "/readyz") == (200, "ok\n")
    assert http_get(port, "/nope")[0] == 404
    # Different addresses: metrics on its own listener, not beside the probes.
    assert running.app.port("/metrics") != port
    assert http_get(port, "/metrics")[0] == 404


def test_liveness_fails_when_the_server_is_wedged(running: RunningProvider) -> None:
    port = running.app.port("/healthz")
    assert http_get(port, "/healthz")[0] == 200
    # Block the server's event loop: gRPC cannot answer, the HTTP thread still can.
    running.wedge(3.0)
    time.sleep(0.1)
    started = time.monotonic()
    status, body = http_get(port, "/healthz")
    assert status == 503
    assert "Version call on polysecret.sock failed: DEADLINE_EXCEEDED" in body
    assert time.monotonic() - started < 2.5  # the probe's own timeout, not a hang
    time.sleep(3.0)
    assert http_get(port, "/healthz")[0] == 200  # recovers with the loop


def test_liveness_fails_when_the_server_is_gone(running: RunningProvider) -> None:
    port = running.app.port("/healthz")
    # The gRPC servers stop without a shutdown being requested (a crash of the
    # serving part while the process lives on): the socket file goes too.
    running.run(running.app.server.stop(0))
    status, body = http_get(port, "/healthz")
    assert status == 503 and "missing" in body
    assert http_get(port, "/readyz")[0] == 503


def test_liveness_fails_when_the_socket_file_is_replaced(running: RunningProvider) -> None:
    """A listener nobody can reach (socket file deleted) is as good as dead to the driver."""
    port = running.app.port("/healthz")
    running.socket().unlink()
    running.socket().write_text("not a socket")
    status, body = http_get(port, "/healthz")
    assert status == 503 and "polysecret.sock failed" in body
    running.socket().unlink()


def test_shutdown_reports_not_ready_but_alive(running: RunningProvider) -> None:
    port = running.app.port("/healthz")

    async def begin_shutdown() -> None:
        running.app.probes.stopping = True
        await running.app.grpc_health.shutting_down()

    running.run(begin_shutdown())
    assert http_get(port, "/readyz") == (503, "shutting down\n")
    # Draining is not a reason for kubelet to restart us.
    assert http_get(port, "/healthz")[0] == 200
    assert _health(running.socket(), "") == health_pb2.HealthCheckResponse.NOT_SERVING


def test_health_watch_sees_the_shutdown(running: RunningProvider) -> None:
    """A Watch follows the serving state into shutdown."""
    with grpc.insecure_channel(f"unix:{running.socket()}") as channel:
        stream = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service="v1alpha1.CSIDriverProvider"), timeout=10
        )
        assert next(stream).status == health_pb2.HealthCheckResponse.SERVING
        running.run(running.app.grpc_health.shutting_down())
        assert next(stream).status == health_pb2.HealthCheckResponse.NOT_SERVING
        stream.cancel()


def test_health_asked_first_during_shutdown(running: RunningProvider) -> None:
    """Asked first during shutdown: NOT_SERVING for both services, NOT_FOUND for others."""
    running.run(running.app.grpc_health.shutting_down())
    for service in ("", "v1alpha1.CSIDriverProvider"):
        assert _health(running.socket(), service) == health_pb2.HealthCheckResponse.NOT_SERVING
    with pytest.raises(grpc.RpcError) as err:
        _health(running.socket(), "no.such.Service")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def _raw(port: int, request: bytes) -> bytes:
    """Send bytes as they are; everything the endpoint answers before it closes."""
    import socket as pysocket

    with pysocket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(request)
        conn.shutdown(pysocket.SHUT_WR)  # all there is: the endpoint sees the end
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
        return answer


def test_http_endpoint_answers_only_what_probes_and_scrapes_send(
    running: RunningProvider,
) -> None:
    port = running.app.port("/readyz")
    ok = _raw(port, b"GET /readyz?x=1 HTTP/1.1\r\nHost: a\r\nUser-Agent: kube-probe/1.34\r\n\r\n")
    head, _, body = ok.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 200 OK"
    assert b"Content-Length: 3" in head and b"Connection: close" in head and body == b"ok\n"
    # HEAD: the same headers, no body.
    head_only = _raw(port, b"HEAD /readyz HTTP/1.0\r\n\r\n")
    assert head_only.startswith(b"HTTP/1.1 200 OK") and head_only.endswith(b"\r\n\r\n")
    assert _raw(port, b"POST /readyz HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 501 ")
    assert _raw(port, b"GET /readyz\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert _raw(port, b"\x16\x03\x01 TLS hello\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    long_header = b"GET /readyz HTTP/1.1\r\nX: " + b"a" * 10_000 + b"\r\n\r\n"
    assert _raw(port, long_header).startswith(b"HTTP/1.1 400 ")
    many = b"GET /readyz HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n"
    assert _raw(port, many).startswith(b"HTTP/1.1 400 ")
    # Cut off before the headers end: refused, and the endpoint lives on.
    assert _raw(port, b"GET /readyz HTTP/1.1\r\nHost: a\r\n").startswith(b"HTTP/1.1 400 ")
    assert http_get(port, "/readyz") == (200, "ok\n")


def test_a_silent_client_does_not_hold_the_probes(running: RunningProvider) -> None:
    import socket as pysocket

    port = running.app.port("/healthz")
    with pysocket.create_connection(("127.0.0.1", port), timeout=5) as idle:
        idle.sendall(b"GET /healthz HTTP/1.1\r\n")  # and never more
        assert http_get(port, "/healthz") == (200, "ok\n")
        assert http_get(port, "/readyz") == (200, "ok\n")


def test_probes_before_start(tmp_path: Path) -> None:
    probes = Probes(sockets=[tmp_path / "polysecret.sock"])
    assert probes.live() == "not started"
    assert probes.ready() == "not started"
    probes.started = True
    assert probes.live() == f"socket {tmp_path / 'polysecret.sock'} is missing"


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("127.0.0.1:8098", ("127.0.0.1", 8098)),
        (":8098", ("0.0.0.0", 8098)),  # noqa: S104 - what parse_addr must answer
        ("[::1]:9000", ("::1", 9000)),
        ("localhost:0", ("localhost", 0)),
    ],
    ids=["ipv4", "all-interfaces", "ipv6", "ephemeral"],
)
def test_parse_addr(addr: str, expected: tuple[str, int]) -> None:
    assert parse_addr(addr) == expected


@pytest.mark.parametrize(
    "addr", ["8098", "host:", "host:http"], ids=["no-colon", "no-port", "name"]
)
def test_parse_addr_rejects(addr: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_addr(addr)


def test_taken_port_fails_start_before_any_socket(tmp_path: Path) -> None:
    import socket as pysocket

    with pysocket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = settings_for(tmp_path, {}, health_addr=f"127.0.0.1:{port}")
        provider = RunningProvider(settings)
        with pytest.raises(OSError):
            provider.__enter__()
        assert not (tmp_path / "polysecret.sock").exists()
    asyncio.set_event_loop(None)
