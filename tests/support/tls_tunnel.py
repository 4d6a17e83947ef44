"""An HTTPS proxy that ends the TLS of CONNECT tunnels and hands the bytes to a local server.

For running the AWS reference provider against moto in bench/cost.py: the peer
builds its STS client with ``sts.New(sts.Options{Region: ...})``, which honours
no endpoint setting (AWS_ENDPOINT_URL reaches only the clients made from
``config.LoadDefaultConfig``), so its AssumeRoleWithWebIdentity goes to
``https://sts.<region>.amazonaws.com``. The SDK's HTTP client does follow
HTTPS_PROXY: given this proxy and a CA it trusts (SSL_CERT_FILE), its CONNECT
to that host ends here, TLS is terminated with a certificate for the host from
a fresh test CA, and the plain HTTP inside goes to the host's upstream (moto,
which answers STS too). No request leaves the machine; a CONNECT to any other
host is refused (403) and counted in ``refused``.

The Azure peer reaches Key Vault at ``https://<vault>.vault.azure.net/`` and
Azure AD at ``https://login.microsoftonline.com/`` (the public cloud's names,
which the Key Vault stand-in's 401 challenge agrees with): those hosts go to
the Azure stand-ins, which speak TLS themselves, so there the tunnel opens TLS
to the upstream too (trusting the stand-ins' CA).
"""


from __future__ import annotations

import contextlib
import select
import socket
import socketserver
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.background import serving


@dataclass
class Tunnel:
    url: str  # for HTTPS_PROXY
    ca_file: Path  # for SSL_CERT_FILE
    tunnels: list[str] = field(default_factory=list)  # "host:port" per CONNECT served
    refused: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Upstream:
    host: str
    port: int
    ca_file: Path | None = None  # speak TLS to it, trusting this CA (else plain TCP)


def _pump(a: socket.socket, b: socket.socket) -> None:
    """Bytes both ways until one side closes, in one thread.

    One thread per tunnel: an SSL object must not be read and written from two
    threads at once. Bytes already decrypted in a TLS socket are not seen by
    select(), hence ``pending()`` first.
    """
    other = {a: b, b: a}
    with contextlib.suppress(OSError):
        while True:
            ready: list[socket.socket] = [
                s for s in other if isinstance(s, ssl.SSLSocket) and s.pending()
            ]
            if not ready:
                ready, _, _ = select.select(list(other), [], [], 120)
                if not ready:
                    return
            for s in ready:
                data = s.recv(65536)
                if not data:
                    return
                other[s].sendall(data)


@contextlib.contextmanager
def tls_tunnel(workdir: Path, routes: dict[str, Upstream]) -> Iterator[Tunnel]:
    """CONNECT to a host of ``routes`` (port 443) ends here and goes to its upstream."""
    from cryptography.hazmat.primitives import serialization

    from tests.support.openbao import _cert, _key, _write_key

    workdir.mkdir(parents=True, exist_ok=True)
    ca_key, key = _key(), _key()
    ca = _cert("tls tunnel CA", ca_key, None, ca=True)
    hosts = tuple(routes)
    cert = _cert(hosts[0], key, (ca, ca_key), ca=False, dns=hosts)
    ca_file = workdir / "tunnel-ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (workdir / "tunnel.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, workdir / "tunnel-key.pem")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(workdir / "tunnel.pem", workdir / "tunnel-key.pem")

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            line = self.rfile.readline(8192).decode("latin-1").split()
            while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                pass  # the CONNECT's headers
            target = line[1] if len(line) == 3 and line[0] == "CONNECT" else ""
            upstream = routes.get(target.removesuffix(":443"))
            if upstream is None:
                state.refused.append(target or " ".join(line))
                self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            state.tunnels.append(target)
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.wfile.flush()
            with context.wrap_socket(self.connection, server_side=True) as inner, \
                    socket.create_connection((upstream.host, upstream.port)) as plain:  # fmt: skip
                out = plain
                if upstream.ca_file is not None:
                    client = ssl.create_default_context(cafile=str(upstream.ca_file))
                    out = client.wrap_socket(plain, server_hostname=upstream.host)
                with out:  # a TLS wrapper is a socket of its own
                    _pump(inner, out)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state = Tunnel(url=f"http://127.0.0.1:{server.server_address[1]}", ca_file=ca_file)
    with serving(server):
        yield state
