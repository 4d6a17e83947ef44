"""Fixtures for the operations tests: moto, a delaying proxy, the provider as a real process.

moto is a real AWS API server. The provider runs either in-process
(tests.support.running) or, for signal handling, as ``python -m provider serve``
in a subprocess, exactly as the container runs it.

"Slow in-flight mounts" need a backend that takes its time: a tiny HTTP proxy in
front of moto holds every Secrets Manager call for ``delay`` seconds (and counts
arrivals, so a test knows when mounts are really in flight). It forwards bytes
unchanged; it is test-only scaffolding, not a fake of any API.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.moto import REGION, ROLE_ARN, moto_server, reset, seed_client
from tests.support.running import pod_attributes
from tests.support.tokens import pod_token

REPO = Path(__file__).resolve().parents[2]
# Known values that must never appear in logs or metrics.
STS_TOKEN = pod_token("sts.amazonaws.com")
SECRET_VALUES = {
    "ops/db-password": "Zq8-very-secret-db-password-41",
    "ops/api-key": "AKx-very-secret-api-key-77",
}
NODE_PUBLISH_SECRET = "np-ref-secret-value-93"


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def seeded(moto_url: str) -> dict[str, str]:
    """A fresh moto holding SECRET_VALUES in the role's account."""
    reset(moto_url)
    sm = seed_client(moto_url, "secretsmanager")
    for name, value in SECRET_VALUES.items():
        sm.create_secret(Name=name, SecretString=value)
    return dict(SECRET_VALUES)


def aws_attributes(*names: str, pod: str = "app-0") -> dict[str, str]:
    objects = "".join(f"- objectName: {n}\n  objectType: secretsmanager\n" for n in names)
    return pod_attributes(
        {"objects": objects, "region": REGION, "roleArn": ROLE_ARN},
        pod=pod,
        tokens={"sts.amazonaws.com": STS_TOKEN},
    )


@dataclass
class SlowProxy:
    url: str = ""
    delay: float = 0.0
    arrived: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_arrivals(self, n: int, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if self.arrived >= n:
                    return
            time.sleep(0.02)
        raise AssertionError(f"only {self.arrived} of {n} backend calls arrived")


@pytest.fixture
def slow_proxy(moto_url: str) -> Iterator[SlowProxy]:
    state = SlowProxy()
    target = urllib.parse.urlsplit(moto_url)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("X-Amz-Target", "").startswith("secretsmanager."):
                with state.lock:
                    state.arrived += 1
                time.sleep(state.delay)
            conn = http.client.HTTPConnection(target.hostname or "", target.port, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            conn.request("POST", self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            conn.close()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    # A provider cut off by its grace period hangs up mid-request: expected here.
    server.handle_error = lambda *_: None  # type: ignore[method-assign]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


class ProviderProcess:
    """``python -m provider serve`` in a subprocess; stderr (the log) goes to a file."""

    def __init__(self, socket_dir: Path, log_path: Path, *args: str) -> None:
        self.socket = socket_dir / "polysecret.sock"
        self.log_path = log_path
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "PYTHONPATH": str(REPO),
            # No ambient AWS identity: the pod's token is the only way in.
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        self._log = log_path.open("wb")
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "provider", "serve",
                "--socket-dir", str(socket_dir),
                "--health-addr", "127.0.0.1:0",
                "--metrics-addr", "127.0.0.1:0",
                # Every mount reaches the backend (these tests count calls); a
                # test may pass its own --refresh-interval (the last one wins).
                "--refresh-interval", "0",
                *args,
            ],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=self._log,
        )

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line]

    def wait_started(self, timeout: float = 20.0) -> dict[str, Any]:
        """The 'started' log line (it carries the HTTP ports)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in self.log_lines():
                if line.get("msg") == "started":
                    return line
            if self.proc.poll() is not None:
                raise AssertionError(f"provider exited: {self.log_path.read_text()}")
            time.sleep(0.02)
        raise AssertionError("provider did not start")

    def get(self, port: int, path: str) -> tuple[int, str]:
        return http_get(port, path)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()


def http_get(port: int, path: str, timeout: float = 10.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def provider_process(tmp_path: Path) -> Iterator[Any]:
    started: list[ProviderProcess] = []

    def start(*args: str) -> ProviderProcess:
        p = ProviderProcess(tmp_path / "sockets", tmp_path / f"provider-{len(started)}.log", *args)
        started.append(p)
        return p

    try:
        yield start
    finally:
        for p in started:
            p.stop()
