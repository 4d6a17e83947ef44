"""A loopback TCP server whose every connection runs a test's script: exact bytes, exact closes.

Why: the HTTP/1.1 client (provider.backends.http1) must be shown what real
servers rarely do on demand: an answer cut mid-body, a body delimited by
closing the connection, garbage, silence, a kept connection closed while idle.
A well-behaved server library would refuse to send those bytes, so each test
writes them itself over a real socket. The server counts what a test asserts
on from the server's side: connections accepted, connections open at once,
the requests received (raw bytes), and the connections the client closed.

One thread per connection (tests open a handful); optionally TLS (``ssl``).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator


class Conn:
    """One accepted connection, as a script sees it."""

    def __init__(self, server: RawServer, sock: socket.socket, index: int) -> None:
        self.server = server
        self.sock = sock
        self.index = index  # 0 for the first connection accepted, 1 for the next...
        self._buffer = b""

    def read_request(self) -> bytes | None:
        """The next request (head and its Content-Length body); None when the client closed."""
        while b"\r\n\r\n" not in self._buffer:
            if not self._recv():
                return None
        head, _, rest = self._buffer.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(rest) < length:
            if not self._recv():
                return None
            rest = self._buffer.partition(b"\r\n\r\n")[2]
        request = head + b"\r\n\r\n" + rest[:length]
        self._buffer = rest[length:]
        self.server.record(request)
        return request

    def wait_closed(self, timeout: float = 5.0) -> bool:
        """Whether the client closes (or resets) this connection within ``timeout`` seconds."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self._buffer += data
        except TimeoutError:
            return False
        except OSError:
            return True  # a reset: closed too

    def send(self, data: bytes) -> bool:
        """Write ``data``; False if the client has gone (reset, broken pipe)."""
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        return True

    def _recv(self) -> bool:
        try:
            data = self.sock.recv(65536)
        except OSError:
            return False
        self._buffer += data
        return bool(data)


Script = Callable[[Conn], None]


def serve_forever_with(answer: bytes) -> Script:
    """A script answering every request on the connection with ``answer`` (keep-alive)."""

    def script(conn: Conn) -> None:
        while conn.read_request() is not None:
            conn.send(answer)

    return script


def ok(body: bytes = b"ok", *headers: str) -> bytes:
    """A 200 answer with a Content-Length ``body`` and extra ``headers`` lines."""
    extra = "".join(f"{h}\r\n" for h in headers)
    return (f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n").encode() + body


class RawServer:
    """Accepts on 127.0.0.1:<free port>; runs ``script`` for each connection on its own thread."""

    def __init__(self, script: Script, *, tls: ssl.SSLContext | None = None) -> None:
        self.script = script
        self._tls = tls
        self._lock = threading.Lock()
        self.accepted = 0
        self.open_now = 0
        self.max_open = 0
        self.requests: list[bytes] = []
        self._socks: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._accept_thread = threading.Thread(target=self._accept, daemon=True)
        self._accept_thread.start()

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}"

    def record(self, request: bytes) -> None:
        with self._lock:
            self.requests.append(request)

    def lines(self) -> list[str]:
        """The request lines received, in order ("GET /x HTTP/1.1")."""
        with self._lock:
            return [r.split(b"\r\n", 1)[0].decode("latin-1") for r in self.requests]

    def close(self) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept(); close() alone does not
        with contextlib.suppress(OSError):
            self._listener.close()
        self._accept_thread.join(5)
        with self._lock:
            socks = list(self._socks)
        for sock in socks:  # unblocks scripts still reading a connection the client kept
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(5)

    def _accept(self) -> None:
        while not self._stopping:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                index = self.accepted
                self.accepted += 1
                self.open_now += 1
                self.max_open = max(self.max_open, self.open_now)
                self._socks.append(sock)
            thread = threading.Thread(target=self._run, args=(sock, index), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, sock: socket.socket, index: int) -> None:
        try:
            if self._tls is not None:
                try:
                    sock = self._tls.wrap_socket(sock, server_side=True)
                except (OSError, ssl.SSLError):
                    return
                with self._lock:
                    self._socks.append(sock)
            self.script(Conn(self, sock, index))
        finally:
            with self._lock:
                self.open_now -= 1
            with contextlib.suppress(OSError):
                sock.close()


@contextlib.contextmanager
def raw_server(script: Script, *, tls: ssl.SSLContext | None = None) -> Iterator[RawServer]:
    """A RawServer running ``script``, always closed."""
    server = RawServer(script, tls=tls)
    try:
        yield server
    finally:
        server.close()
