"""Stopping what the tests start in the background: a server thread, a subprocess.

Every stand-in server (Kubernetes API, Azure, the TLS tunnel) serves from a
daemon thread until its ``with`` block ends; every helper process (OpenBao,
proxy.py, the Go peers) is asked to stop, then killed if it does not.
"""

from __future__ import annotations

import socketserver
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[None]:
    """``server`` answers from a daemon thread inside the block; shut down, closed and
    its thread ended after."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def stop(process: subprocess.Popen[bytes] | subprocess.Popen[str], grace: float) -> None:
    """SIGTERM ``process``; SIGKILL it if it has not exited within ``grace`` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(grace)
