"""Health: the gRPC health service on every socket, and HTTP probes for kubelet.

Two audiences. gRPC clients (grpc_health_probe, a future driver health check)
ask ``grpc.health.v1.Health`` on the provider's own socket; it answers SERVING
until shutdown starts, then NOT_SERVING.

Kubelet probes over HTTP, so a tiny HTTP server answers:

* ``/healthz`` (liveness) makes a real ``Version`` call through our own Unix
  socket with a short timeout, exactly the path the driver takes. A wedged
  event loop, a dead gRPC server or a deleted socket file all fail it, and
  kubelet restarts the container. It never touches a backend: a Vault or AWS
  outage must not make every node restart its provider.
* ``/readyz`` (readiness) is cheap: started, not shutting down, every socket
  file in place. A DaemonSet has no Service to route, but rolling updates wait
  for readiness before moving to the next node.

The HTTP server runs on its own thread (stdlib ``socketserver``, no extra
dependency), never on the event loop it is checking: if the loop is stuck the
probe must still answer, and answer "unhealthy". ``/metrics`` is served by the
same server when the metrics address equals the health address.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from provider import API_VERSION
from provider.v1alpha1 import service_pb2, service_pb2_grpc

log = logging.getLogger("provider.health")

PROVIDER_SERVICE = "v1alpha1.CSIDriverProvider"
# Kubelet's default probe timeout is 1 s; our own check must fit well inside
# the chart's timeoutSeconds (3 s) even on a loaded 50m-CPU node.
DEFAULT_CHECK_TIMEOUT = 2.0


class GrpcHealth:
    """The standard health service, shared by every socket's server."""

    def __init__(self) -> None:
        # The asyncio servicer keeps asyncio.Conditions: it must be created
        # and used on the server's loop, so it is built lazily in ``register``.
        self._servicer: HealthServicer | None = None

    def register(self, server: grpc.aio.Server) -> None:
        if self._servicer is None:
            self._servicer = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._servicer, server)

    async def serving(self) -> None:
        if self._servicer is not None:
            for service in ("", PROVIDER_SERVICE):
                await self._servicer.set(service, health_pb2.HealthCheckResponse.SERVING)

    async def shutting_down(self) -> None:
        if self._servicer is not None:
            await self._servicer.enter_graceful_shutdown()


def check_socket(path: Path, timeout: float = DEFAULT_CHECK_TIMEOUT) -> str | None:
    """Call ``Version`` through the socket like the driver does; None when healthy.

    A fresh channel each time: a cached connection would keep working after the
    socket file is deleted, while the driver (which connects by path) could not.
    """
    if not path.exists():
        return f"socket {path} is missing"
    channel = grpc.insecure_channel(f"unix:{path}", options=[("grpc.enable_retries", 0)])
    try:
        stub = service_pb2_grpc.CSIDriverProviderStub(channel)
        reply = stub.Version(service_pb2.VersionRequest(version=API_VERSION), timeout=timeout)
    except grpc.RpcError as exc:
        code = exc.code() if isinstance(exc, grpc.Call) else None
        return f"Version call on {path.name} failed: {code.name if code else exc}"
    finally:
        channel.close()
    if reply.version != API_VERSION:
        return f"Version call on {path.name} answered {reply.version!r}"
    return None


@dataclass
class Probes:
    """What the HTTP handlers ask; the App flips ``started``/``stopping``."""

    sockets: Sequence[Path]
    check_timeout: float = DEFAULT_CHECK_TIMEOUT
    started: bool = False
    stopping: bool = False

    def live(self) -> str | None:
        if not self.started:
            return "not started"
        if self.stopping:
            # Draining is healthy: a restart now would cut the in-flight mounts short.
            return None
        for path in self.sockets:
            problem = check_socket(path, self.check_timeout)
            if problem:
                return problem
        return None

    def ready(self) -> str | None:
        if not self.started:
            return "not started"
        if self.stopping:
            return "shutting down"
        missing = [str(p) for p in self.sockets if not p.exists()]
        return f"socket missing: {', '.join(missing)}" if missing else None


Route = Callable[[], tuple[int, str, bytes]]


def probe_route(check: Callable[[], str | None]) -> Route:
    def route() -> tuple[int, str, bytes]:
        problem = check()
        if problem is None:
            return 200, "text/plain; charset=utf-8", b"ok\n"
        return 503, "text/plain; charset=utf-8", f"{problem}\n".encode()

    return route


def parse_addr(addr: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` (all interfaces) or ``[v6]:PORT``."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address {addr!r} must be HOST:PORT or :PORT")
    host = host.strip("[]")
    return host or "0.0.0.0", int(port)  # noqa: S104 - pod IP, for kubelet's probes


# What a probe or a scrape sends is a request line and a few headers, no body.
MAX_LINE = 8192
MAX_HEADERS = 100
# A client that never finishes its request frees its thread after this long.
REQUEST_TIMEOUT = 10.0
_TEXT = "text/plain; charset=utf-8"


class _Handler(socketserver.StreamRequestHandler):
    """One ``GET`` (or ``HEAD``) of a route per connection, answered, then closed.

    Not ``http.server``: it would cost every idle node ~1 MiB (html,
    mimetypes, http.client and the email package it parses headers with) to
    answer kubelet and Prometheus, which need only this. Lines and headers are bounded and a
    slow client times out, so nobody on the pod network can hold the probes.
    """

    server: _HttpServer
    timeout = REQUEST_TIMEOUT

    def handle(self) -> None:
        try:
            request = self._read_request()
        except OSError:  # timed out or reset: nobody to answer
            return
        if request is None:
            self._send(400, _TEXT, b"bad request\n")
            return
        method, path = request
        route = self.server.routes.get(path.split("?", 1)[0])
        if method not in ("GET", "HEAD"):
            status, ctype, body = 501, _TEXT, b"unsupported method\n"
        elif route is None:
            status, ctype, body = 404, _TEXT, b"not found\n"
        else:
            try:
                status, ctype, body = route()
            except Exception:  # a probe must answer, whatever broke
                log.exception("probe handler failed")
                status, ctype, body = 500, _TEXT, b"error\n"
        self._send(status, ctype, body if method == "GET" else b"", length=len(body))

    def _read_request(self) -> tuple[str, str] | None:
        """``(method, path)``, or None when it is not an HTTP/1.x request line and headers."""
        line = self.rfile.readline(MAX_LINE + 1)
        parts = line.decode("latin-1").split()
        if len(line) > MAX_LINE or len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return None
        for _ in range(MAX_HEADERS + 1):
            header = self.rfile.readline(MAX_LINE + 1)
            if len(header) > MAX_LINE or not header:
                return None
            if header in (b"\r\n", b"\n"):
                return parts[0], parts[1]
        return None

    def _send(self, status: int, ctype: str, body: bytes, *, length: int | None = None) -> None:
        head = (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            f"Content-Type: {ctype}\r\n"
            f"Content-Length: {len(body) if length is None else length}\r\n"
            "Connection: close\r\n\r\n"
        )
        with contextlib.suppress(OSError):  # the client left: nothing to tell it
            self.wfile.write(head.encode("latin-1") + body)


class _HttpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True  # a restarted provider rebinds at once

    def __init__(self, host: str, port: int, routes: dict[str, Route]) -> None:
        # address_family is read by the base __init__: set it first.
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.routes = dict(routes)
        super().__init__((host, port), _Handler)


class HttpEndpoint:
    """One HTTP listener on its own thread serving a set of routes."""

    def __init__(self, addr: str, routes: dict[str, Route]) -> None:
        host, port = parse_addr(addr)
        self._server = _HttpServer(host, port, routes)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"http-{port}", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def paths(self) -> list[str]:
        return sorted(self._server.routes)

    def start(self) -> None:
        self._thread.start()
        host = str(self._server.server_address[0])
        log.info("http listening", extra={"address": f"{host}:{self.port}", "paths": self.paths})

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
