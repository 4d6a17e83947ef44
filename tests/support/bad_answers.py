"""A loopback HTTP proxy in front of a real server that answers chosen requests badly.

Why: moto and OpenBao only ever send well-formed answers, but real networks
and middleboxes do not (a captive proxy's HTML page, a body cut short, an
empty object from a misbehaving gateway). The provider must turn each of
those into a retried fault or a clear error, never into an empty file. This
proxy forwards every request to the real server unchanged, except those a
rule matches: for those it sends the rule's answer instead, or the real
answer cut short. It counts the requests each rule matched, so tests can
assert how often the provider asked.

Plain HTTP only (moto and OpenBao's plain listener); the Azure stand-in has
its own fault knob.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "keep-alive"}


@dataclass(frozen=True)
class Seen:
    """One request as the proxy received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def aws_operation(self) -> str:
        """The AWS operation: JSON protocol (X-Amz-Target) or query protocol (Action=)."""
        target = self.headers.get("x-amz-target", "")
        if target:
            return target.rpartition(".")[2]
        form = urllib.parse.parse_qs(self.body.decode("utf-8", "replace"))
        return (form.get("Action") or [""])[0]


@dataclass(frozen=True)
class Answer:
    """What to send instead of the real answer.

    ``cut``: forward the request, then send only this fraction of the real
    body. With ``keep_length`` the real Content-Length is announced and the
    connection closed early (a dropped connection); without, the short body
    is announced as complete (a truncating middlebox).
    """

    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    cut: float | None = None
    keep_length: bool = False


@dataclass
class Rule:
    match: Callable[[Seen], bool]
    answer: Answer
    times: int | None  # None: every matching request
    hits: int = 0


@dataclass
class BadAnswers:
    upstream: str
    url: str = ""
    rules: list[Rule] = field(default_factory=list)
    # Every request, with the monotonic time it arrived (to measure retry waits).
    log: list[tuple[float, Seen]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def when(self, match: Callable[[Seen], bool], answer: Answer,
             times: int | None = None) -> Rule:
        """Answer requests that ``match`` with ``answer`` (the first ``times`` of them)."""
        rule = Rule(match, answer, times)
        with self.lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()
            self.log.clear()

    def arrivals(self, match: Callable[[Seen], bool]) -> list[float]:
        """When the requests that ``match`` arrived (monotonic seconds), in order."""
        with self.lock:
            return [at for at, seen in self.log if match(seen)]

    def _rule_for(self, seen: Seen) -> Rule | None:
        with self.lock:
            self.log.append((time.monotonic(), seen))
            for rule in self.rules:
                if (rule.times is None or rule.hits < rule.times) and rule.match(seen):
                    rule.hits += 1
                    return rule
        return None


def aws(operation: str) -> Callable[[Seen], bool]:
    return lambda seen: seen.aws_operation() == operation


def path_has(part: str) -> Callable[[Seen], bool]:
    return lambda seen: part in seen.path


@contextmanager
def bad_answers(upstream: str) -> Iterator[BadAnswers]:
    """A BadAnswers proxy to ``upstream`` (``http://host:port``), stopped afterwards."""
    state = BadAnswers(upstream)
    target = urllib.parse.urlsplit(upstream)

    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: one request per connection, so a cut answer ends its connection.
        def log_message(self, format: str, *args: Any) -> None:
            return None

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen = Seen(self.command, self.path,
                        {k.lower(): v for k, v in self.headers.items()}, body)
            rule = state._rule_for(seen)
            if rule is not None and rule.answer.cut is None:
                self._send(rule.answer.status, list(rule.answer.headers), rule.answer.body)
                return
            status, headers, data = self._forward(seen)
            if rule is None:
                self._send(status, headers, data)
                return
            short = data[: int(len(data) * (rule.answer.cut or 0))]
            self._send(status, headers, short, length=len(data) if rule.answer.keep_length
                       else None)

        def _forward(self, seen: Seen) -> tuple[int, list[tuple[str, str]], bytes]:
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(seen.method, seen.path, body=seen.body or None, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                kept = [(k, v) for k, v in answer.getheaders() if k.lower() not in _HOP_BY_HOP]
                return answer.status, kept, data
            finally:
                conn.close()

        def _send(self, status: int, headers: list[tuple[str, str]], data: bytes,
                  length: int | None = None) -> None:
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data) if length is None else length))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_LIST = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
