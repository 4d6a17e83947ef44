"""A plain-HTTP forwarding proxy that counts requests as the backend receives them, and can stall.

Why: the rotation tests and bench/rotation.py must count reads *at the
backend* (not in our own metrics, which is what they check), and the
stalled-login tests need a backend that holds one kind of request until told
to let go. moto and OpenBao speak plain HTTP on loopback, so one small
forwarding proxy serves both: every request is recorded as
(method, path, AWS operation) before it is forwarded.
"""

from __future__ import annotations

import http.client
import re
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_HOP = {"content-length", "transfer-encoding", "connection", "keep-alive"}
_ACTION = re.compile(rb"(?:^|&)Action=([A-Za-z]+)")

Seen = tuple[str, str, str]  # method, path, operation (X-Amz-Target or Action; "" for Vault)


class CountingProxy:
    """``http://127.0.0.1:<port>`` -> ``upstream``; ``requests`` lists what arrived."""

    def __init__(self, upstream: str) -> None:
        target = urllib.parse.urlsplit(upstream)
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        # Requests matching this are held until ``release`` (or their client gives up).
        self._stall: Callable[[Seen], bool] | None = None
        self._stall_left = 0
        self._released = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return None

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
                if not operation:
                    found = _ACTION.search(body)
                    operation = found.group(1).decode() if found else ""
                seen = (self.command, self.path.split("?")[0], operation)
                with proxy._lock:
                    proxy.requests.append(seen)
                    held = proxy._stall is not None and proxy._stall_left > 0 and proxy._stall(seen)
                    if held:
                        proxy._stall_left -= 1
                if held:
                    proxy._released.wait(60)
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                    headers["Host"] = target.netloc
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    answer = conn.getresponse()
                    data = answer.read()
                    self.send_response(answer.status)
                    for k, v in answer.getheaders():
                        if k.lower() not in _HOP:
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_LIST = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def count(self, predicate: Callable[[Seen], bool] = lambda _s: True) -> int:
        with self._lock:
            return sum(1 for seen in self.requests if predicate(seen))

    def stall(self, predicate: Callable[[Seen], bool], times: int = 1_000_000) -> None:
        """Hold the next ``times`` matching requests (a backend that stopped answering)."""
        with self._lock:
            self._released.clear()
            self._stall = predicate
            self._stall_left = times

    def release(self) -> None:
        with self._lock:
            self._stall = None
        self._released.set()

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
