"""Fixtures for the conformance tests: the driver's Go client, the three real test servers,
and our real provider in front of each, all started once per session.

The Go binaries are built (or relinked from Go's cache) once; a missing Go
toolchain is an error, never a skip. Each backend's server and provider start
only when a test needs that backend. The providers run in-process on a real
Unix socket (tests/support/running.py), exactly as ``serve`` builds them.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import shutil
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from provider.backends.aws import AwsSettings
from provider.backends.vault import VaultSettings
from tests.conformance import backends
from tests.conformance.harness import build_binaries
from tests.support.azure_standin import WI_CLIENT, AzureWorld, azure_world
from tests.support.moto import REGION, moto_server, seed_client
from tests.support.openbao import OpenBao, TokenSigner, openbao_server
from tests.support.running import RunningProvider, settings_for


@pytest.fixture(scope="session")
def binaries() -> dict[str, Path]:
    """{"v1.6": path, "v1.5": path}. HarnessError (no Go, no modules) fails the tests."""
    return build_binaries()


def _socket_dir(name: str) -> Iterator[Path]:
    # Short: a Unix socket path must fit in 108 bytes; pytest's tmp_path may not.
    path = Path(tempfile.mkdtemp(prefix=f"psc-{name}-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class Backend:
    """A running provider for one backend, and how to make a fresh scenario on it."""

    name: str
    provider: RunningProvider
    make: Callable[[], backends.Scenario]

    @property
    def socket_dir(self) -> Path:
        return Path(self.provider.settings.socket_dir)


# -- AWS: moto behind a proxy that can deny chosen secrets ---------------------------


@dataclass
class DenyProxy:
    """Passes everything to moto, except reads of the names in ``deny``.

    moto enforces no IAM policy, so "the role may not read this secret" is
    played here: a GetSecretValue / GetParameters naming a denied secret gets
    the AccessDeniedException AWS answers, word for word in AWS's shape.
    """

    url: str = ""
    deny: set[str] = field(default_factory=set)


def _deny_proxy(upstream_url: str) -> tuple[ThreadingHTTPServer, DenyProxy]:
    state = DenyProxy()
    upstream = urllib.parse.urlsplit(upstream_url)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

        def _reply(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
            # The provider may have given up on this answer (a deadline): nobody reads it.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            target = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
            try:
                request = json.loads(body) if target else {}
            except ValueError:
                request = {}
            names = [request.get("SecretId", ""), *request.get("Names", [])]
            denied = next((n for n in names if n in state.deny), None)
            if denied is not None:
                service = "ssm" if "Names" in request else "secretsmanager"
                message = (
                    f"User: arn:aws:sts::111122223333:assumed-role/app-role/polysecret "
                    f"is not authorized to perform: {service}:{target} on resource: {denied} "
                    f"because no identity-based policy allows the {service}:{target} action"
                )
                error = json.dumps({"__type": "AccessDeniedException", "Message": message})
                self._reply(400, error.encode(), [("Content-Type", "application/x-amz-json-1.1")])
                return
            conn = http.client.HTTPConnection(str(upstream.hostname), upstream.port, timeout=30)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request("POST", self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                passed = [
                    (k, v)
                    for k, v in answer.getheaders()
                    if k.lower() not in ("content-length", "transfer-encoding", "connection")
                ]
                self._reply(answer.status, data, passed)
            finally:
                conn.close()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    return server, state


@pytest.fixture(scope="session")
def aws_backend() -> Iterator[Backend]:
    with moto_server() as moto_url:
        server, proxy = _deny_proxy(moto_url)
        try:
            for sockets in _socket_dir("aws"):
                settings = settings_for(
                    sockets, {"aws": AwsSettings(region=REGION, endpoint_url=proxy.url)}
                )
                with RunningProvider(settings) as running:
                    sm = seed_client(moto_url, "secretsmanager")
                    ssm = seed_client(moto_url, "ssm")
                    yield Backend("aws", running, functools.partial(
                        backends.aws_scenario, sm, ssm, proxy.deny
                    ))  # fmt: skip
        finally:
            server.shutdown()
            server.server_close()


# -- Vault: a real OpenBao ---------------------------------------------------------


@pytest.fixture(scope="session")
def vault_backend() -> Iterator[Backend]:
    signer = TokenSigner()
    bao: OpenBao
    with openbao_server() as bao:
        backends.seed_vault(bao, signer)
        for sockets in _socket_dir("vault"):
            settings = settings_for(sockets, {"vault": VaultSettings(address=bao.address)})
            with RunningProvider(settings) as running:
                yield Backend("vault", running, lambda: backends.vault_scenario(bao, signer))


# -- Azure: the HTTPS Key Vault stand-in, with per-object access ----------------------


def _deny_names(world: AzureWorld, deny: set[str]) -> None:
    """Key Vault answers 403 for reads of the names in ``deny`` (an RBAC scope per secret).

    The stand-in's own access policy is per vault; Key Vault RBAC can grant
    per secret, which is what a "denied object" among allowed ones needs.
    """
    vault = world.vault
    handle = vault.handle

    def guarded(method: str, raw_path: str, headers: Any, body: bytes) -> Any:
        parts = urllib.parse.urlsplit(raw_path).path.split("/")
        if len(parts) > 2 and parts[2] in deny and headers.get("Authorization"):
            client = "appid=" + WI_CLIENT
            return (
                403,
                {},
                {
                    "error": {
                        "code": "Forbidden",
                        "message": f"Caller is not authorized to perform action on resource. "
                        f"Caller: {client}; Action: 'Microsoft.KeyVault/vaults/secrets/getSecret"
                        f"/action'; Resource: '{parts[2]}'",
                        "innererror": {"code": "ForbiddenByRbac"},
                    }
                },
            )
        return handle(method, raw_path, headers, body)

    vault.handle = guarded  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def azure_backend() -> Iterator[Backend]:
    with azure_world() as world:
        deny: set[str] = set()
        _deny_names(world, deny)
        for sockets in _socket_dir("azure"):
            settings = settings_for(sockets, {"azure": world.settings()})
            with RunningProvider(settings) as running:
                yield Backend("azure", running, lambda: backends.azure_scenario(world, deny))


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Backend:
    """The Backend named by the test's (indirect) ``backend`` parameter."""
    name: str = request.param
    found: Backend = request.getfixturevalue(f"{name}_backend")
    return found


@pytest.fixture
def scenario(backend: Backend) -> backends.Scenario:
    return backend.make()
