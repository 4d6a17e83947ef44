"""A real HTTP proxy (proxy.py, from PyPI) in a subprocess, for the proxy tests.

Why a real one: the client's proxy path (absolute-form requests for http, a
CONNECT tunnel then TLS inside it for https, Proxy-Authorization from the URL)
is only shown right by a proxy that was not written to agree with it.
proxy.py speaks both, checks Basic credentials (``basic_auth``) and refuses
tunnels to chosen hosts (its FilterByUpstreamHostPlugin answers 418). Its
access log, one line per request or tunnel, is what tests count.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.background import stop


@dataclass
class RunningProxy:
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_with(self, userinfo: str) -> str:
        return f"http://{userinfo}@127.0.0.1:{self.port}"

    def access_lines(self) -> list[str]:
        """The access log's entries ("GET 127.0.0.1:8200/v1/x - 200 OK", "CONNECT host:port")."""
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return [line.split(" - ", 2)[2] for line in lines
                if "access_log" in line and line.count(" - ") >= 2]

    def wait_for(self, text: str, timeout: float = 10.0) -> list[str]:
        """The access entries holding ``text``, once there is one (a tunnel is logged when
        it closes)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.access_lines() if text in line]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


@contextlib.contextmanager
def proxy_server(*, basic_auth: str = "", blocked_hosts: str = "") -> Iterator[RunningProxy]:
    """Start proxy.py on a free loopback port, wait until it accepts, always stop it."""
    workdir = Path(tempfile.mkdtemp(prefix="proxypy-"))
    port_file, log = workdir / "port", workdir / "proxy.log"
    args = [sys.executable, "-m", "proxy", "--hostname", "127.0.0.1", "--port", "0",
            "--port-file", str(port_file), "--num-workers", "1", "--num-acceptors", "1",
            "--log-level", "INFO", "--log-file", str(log), "--timeout", "30"]
    if basic_auth:
        args += ["--basic-auth", basic_auth]
    if blocked_hosts:
        args += ["--plugins", "proxy.plugin.FilterByUpstreamHostPlugin",
                 "--filtered-upstream-hosts", blocked_hosts]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                               cwd=workdir)
    try:
        yield RunningProxy(_wait_listening(process, port_file, log), log)
    finally:
        stop(process, 10)
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_listening(process: subprocess.Popen[bytes], port_file: Path, log: Path,
                    timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"proxy.py exited with {process.returncode}: {tail}")
        text = port_file.read_text().strip() if port_file.exists() else ""
        if text.isdigit():
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", int(text)), timeout=1):
                return int(text)
        time.sleep(0.05)
    raise RuntimeError(f"proxy.py not listening after {timeout}s")
