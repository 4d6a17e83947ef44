"""The real provider as its own process, and what /proc says about it.

Why a process: RSS, open file descriptors and threads must be the
provider's alone, not those of the test runner, moto or the load generator
sharing an interpreter with it. Used by the soak test and by bench/overload.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from provider.v1alpha1 import service_pb2, service_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Usage:
    rss_mib: float
    fds: int
    threads: int

    def __str__(self) -> str:
        return f"RSS {self.rss_mib:7.1f} MiB  fds {self.fds:4d}  threads {self.threads:3d}"


def usage(pid: int) -> Usage:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in status if ":" in line)
    return Usage(
        rss_mib=int(fields["VmRSS"].split()[0]) / 1024,
        fds=len(os.listdir(f"/proc/{pid}/fd")),
        threads=int(fields["Threads"]),
    )


class ProviderProcess:
    """``python -m provider serve`` on a private socket directory; always stopped."""

    def __init__(self, *flags: str, env: dict[str, str] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="psproc-", dir="/tmp"))
        self.socket = self.dir / "polysecret.sock"
        environ = {**os.environ, **(env or {})}
        environ["PYTHONPATH"] = str(ROOT)  # this checkout's provider, whatever is installed
        self.process = subprocess.Popen(
            [sys.executable, "-m", "provider", "serve", "--socket-dir", str(self.dir),
             "--log-level", "error", *flags],
            env=environ, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.channel = grpc.insecure_channel(f"unix:{self.socket}")
        self.stub = service_pb2_grpc.CSIDriverProviderStub(self.channel)
        try:
            deadline = time.monotonic() + 30
            while not self.socket.exists():
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the provider did not start ({self.process.returncode})")
                time.sleep(0.02)
            self.stub.Version(service_pb2.VersionRequest(version="v1alpha1"), timeout=10,
                              wait_for_ready=True)
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.process.pid

    def usage(self) -> Usage:
        return usage(self.pid)

    def stop(self) -> None:
        self.channel.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        for entry in self.dir.iterdir():
            entry.unlink()
        self.dir.rmdir()

    def __enter__(self) -> ProviderProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
