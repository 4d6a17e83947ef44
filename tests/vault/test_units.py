"""Pieces without a server: exception mapping, settings precedence, Go-style JSON."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from provider.backends import http1
from provider.backends.jsonanswer import UnusableAnswer
from provider.backends.vault import VaultSettings, VaultTls, add_flags, load_settings
from provider.backends.vault.config import VaultConnection, api_path, parse_plan
from provider.backends.vault.errors import LOGIN, NoToken, VaultStatus, translate
from provider.backends.vault.render import go_json, whole_response
from provider.backends.vault.transport import VaultTransport
from provider.errors import (
    InvalidParameters,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    ProviderError,
    Unavailable,
)
from tests.support.mapping import assert_mapped

pytestmark = pytest.mark.vault


def _classes(module: object, base: type) -> list[type[BaseException]]:
    return [c for _, c in inspect.getmembers(module, inspect.isclass)
            if issubclass(c, base) and c.__module__ == module.__name__]  # type: ignore[attr-defined]


def _instance(cls: type[BaseException]) -> BaseException:
    """An instance of ``cls`` without its constructor (each takes other arguments)."""
    exc = cls.__new__(cls)
    exc.args = ("boom",)
    return exc


OURS = [VaultStatus(status, "GET", "x", ("boom",), None)
        for status in (400, 401, 403, 404, 405, 408, 412, 413, 415, 425, 429, 500, 501, 502,
                       503, 504)]


@pytest.mark.parametrize(
    "exc",
    [*[_instance(c) for c in _classes(http1, Exception)], *OURS, UnusableAnswer("is not JSON"),
     NoToken(), ssl.SSLError("EOF"), ssl.SSLCertVerificationError("certificate verify failed"),
     ConnectionResetError(), ConnectionRefusedError(), TimeoutError(), OSError("no route"),
     socket.gaierror(-2, "Name or service not known"), ValueError("line break"),
     UnicodeEncodeError("latin-1", "\u20ac", 0, 1, "ordinal not in range")],
    ids=lambda e: f"{type(e).__name__}{getattr(e, 'status', '')}",
)
@pytest.mark.parametrize("login", [False, True], ids=["read", "login"])
def test_every_failure_is_mapped(exc: BaseException, login: bool) -> None:
    result = translate(exc, subject="object 'x'", operation=LOGIN if login else "vault.GET")
    assert_mapped(result, type(exc), "object 'x'")


def _status(status: int, errors: tuple[str, ...] = ("boom",)) -> VaultStatus:
    return VaultStatus(status, "GET", "secret/data/x", errors, None)


@pytest.mark.parametrize(
    ("exc", "login", "expected", "code"),
    [
        pytest.param(_status(403, ("permission denied",)), False, PermissionDenied,
                     "AccessDenied", id="403-read"),
        pytest.param(_status(403, ("permission denied",)), True, PermissionDenied,
                     "AuthFailed", id="403-login"),
        pytest.param(_status(400, ("role not found",)), True, PermissionDenied,
                     "AuthFailed", id="400-login"),
        pytest.param(_status(400, ("bad",)), False, InvalidRequest, "BackendRejected",
                     id="400-read"),
        pytest.param(_status(404, ()), False, NotFound, "ObjectNotFound", id="404"),
        pytest.param(_status(404, ()), True, PermissionDenied, "AuthFailed", id="404-login"),
        pytest.param(_status(405), False, InvalidRequest, "BackendRejected", id="405"),
        pytest.param(_status(415), False, InvalidRequest, "BackendRejected", id="415"),
        pytest.param(_status(413), False, InvalidRequest, "BackendRejected", id="413"),
        pytest.param(_status(408), False, Unavailable, "BackendUnavailable", id="408"),
        pytest.param(_status(412), False, Unavailable, "BackendUnavailable", id="412-standby"),
        pytest.param(_status(504), False, Unavailable, "BackendUnavailable", id="504"),
        pytest.param(_status(503, ("Vault is sealed",)), False, Unavailable,
                     "BackendUnavailable", id="sealed"),
        pytest.param(_status(429), False, Unavailable, "Throttled", id="429"),
        pytest.param(ConnectionRefusedError(111, "refused"), False, Unavailable,
                     "BackendUnavailable", id="refused"),
        pytest.param(ssl.SSLCertVerificationError("certificate verify failed"), False,
                     InvalidRequest, "TLSFailed", id="tls-verify"),
        pytest.param(ssl.SSLEOFError("EOF occurred in violation of protocol"), False, Unavailable,
                     "BackendUnavailable", id="tls-transient"),
        pytest.param(ValueError("x"), False, InvalidParameters, "InvalidParameters",
                     id="bad-url"),
        pytest.param(http1.RemoteClosed(received=True), False, Unavailable,
                     "BackendUnavailable", id="cut"),
        pytest.param(http1.BadAnswer("not HTTP"), False, Unavailable, "BackendUnavailable",
                     id="not-http"),
        pytest.param(http1.AnswerTooLarge(16), False, InvalidRequest, "BackendRejected",
                     id="too-large"),
        pytest.param(http1.TooManyRedirects("loop"), False, Unavailable, "BackendUnavailable",
                     id="redirect-loop"),
        pytest.param(NoToken(), True, PermissionDenied, "AuthFailed", id="no-token"),
    ],
)
def test_mapping(exc: BaseException, login: bool, expected: type[ProviderError],
                 code: str) -> None:
    result = translate(exc, subject="s", operation=LOGIN if login else "vault.GET")
    assert type(result) is expected and result.code == code


def test_status_message_names_the_request_and_quotes_vault() -> None:
    result = translate(_status(403, ("permission denied",)), subject="object 'x'",
                       operation="vault.GET")
    assert result.message == ("object 'x': Vault denied GET secret/data/x: permission denied")


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_flags(parser.add_argument_group("vault"))
    return parser.parse_args(argv)


ENV = {"VAULT_ADDR": "http://env:8200", "VAULT_NAMESPACE": "env-ns", "VAULT_CACERT": "/env/ca",
       "VAULT_CAPATH": "/env/cadir", "VAULT_TLS_SERVER_NAME": "env.name",
       "VAULT_CLIENT_CERT": "/env/c", "VAULT_CLIENT_KEY": "/env/k", "VAULT_SKIP_VERIFY": "true"}


def test_environment_only() -> None:
    s = load_settings(_args([]), ENV)
    assert s == VaultSettings(address="http://env:8200", namespace="env-ns", tls=VaultTls(
        ca_cert="/env/ca", ca_directory="/env/cadir", server_name="env.name",
        client_cert="/env/c", client_key="/env/k", skip_verify=True))


def test_openbao_environment_names() -> None:
    s = load_settings(_args([]), {"BAO_ADDR": "http://bao:8200", "BAO_CACERT": "/bao/ca"})
    assert s.address == "http://bao:8200" and s.tls.ca_cert == "/bao/ca"


def test_defaults() -> None:
    s = load_settings(_args([]), {})
    assert s.address == "https://127.0.0.1:8200" and s.auth_mount == "kubernetes"
    assert s.tls == VaultTls()


def test_flags_beat_environment_and_spc_beats_flags() -> None:
    flags = _args(["--vault-addr", "http://flag:8200", "--vault-namespace", "flag-ns",
                   "--vault-mount", "flag-mount", "--vault-ca-cert", "/flag/ca",
                   "--vault-tls-server-name", "flag.name"])
    s = load_settings(flags, ENV)
    assert (s.address, s.namespace, s.auth_mount) == ("http://flag:8200", "flag-ns", "flag-mount")
    assert s.tls.ca_cert == "/flag/ca" and s.tls.ca_directory == "/env/cadir"
    plan = parse_plan({"roleName": "r", "vaultAddress": "http://spc:8200",
                       "vaultCACertPath": "/spc/ca", "vaultSkipTLSVerify": "false",
                       "objects": "- {objectName: a, secretPath: x}"},
                      default_mode=0o644, settings=s)
    c = plan.connection
    assert (c.address, c.namespace, plan.auth_mount) == ("http://spc:8200", "flag-ns", "flag-mount")
    assert c.tls.ca_cert == "/spc/ca" and c.tls.server_name == "flag.name"
    assert c.tls.skip_verify is False and plan.audience == "vault"


@pytest.mark.parametrize(
    ("secret_path", "path", "query"),
    [
        pytest.param("secret/data/a", "secret/data/a", (), id="plain"),
        pytest.param("v1/secret/data/a", "secret/data/a", (), id="v1"),
        pytest.param("/v1/secret/data/a", "secret/data/a", (), id="slash-v1"),
        pytest.param("/secret/data/a", "secret/data/a", (), id="slash"),
        pytest.param("secret/data/a?version=3", "secret/data/a", (("version", "3"),),
                     id="query"),
        pytest.param("db/creds/r?x=1&y=", "db/creds/r", (("x", "1"), ("y", "")), id="two-params"),
    ],
)
def test_api_path(secret_path: str, path: str, query: tuple[tuple[str, str], ...]) -> None:
    assert api_path(secret_path) == (path, query)


def test_identical_reads_share_a_key_and_args_matter() -> None:
    objects = ("- {objectName: a, secretPath: pki/issue/r, method: put, secretArgs: {x: 1, y: 2}}\n"
               "- {objectName: b, secretPath: pki/issue/r, method: PUT, secretArgs: {y: 2, x: 1}}\n"
               "- {objectName: c, secretPath: pki/issue/r, method: PUT, secretArgs: {x: 2}}\n")
    plan = parse_plan({"roleName": "r", "objects": objects}, default_mode=0o644,
                      settings=VaultSettings())
    a, b, c = plan.objects
    assert a.read == b.read != c.read


def test_go_json_escapes_like_encoding_json() -> None:
    assert go_json({"b": "<&>\u2028", "a": [1, None, "é"]}) == (
        '{"a":[1,null,"é"],"b":"\\u003c\\u0026\\u003e\\u2028"}')


def test_whole_response_field_order_and_omitempty() -> None:
    body = whole_response({"data": {"k": "v"}, "request_id": "r", "mount_type": "kv",
                           "auth": None, "lease_duration": 0, "renewable": False,
                           "lease_id": "", "warnings": None, "wrap_info": None})
    assert body == (b'{"request_id":"r","lease_id":"","lease_duration":0,"renewable":false,'
                    b'"data":{"k":"v"},"warnings":null,"mount_type":"kv"}')


class _StatusHandler(BaseHTTPRequestHandler):
    """Answers GET /v1/status/<code> with that status, a Vault-style error body and Retry-After.

    A local stand-in because OpenBao cannot be made to answer 415 or 504 on demand.
    """

    def do_GET(self) -> None:
        status = int(self.path.rsplit("/", 1)[-1])
        body = b'{"errors":["status ' + str(status).encode() + b'"]}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Retry-After", "2")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        pytest.param(405, False, id="405-method"),
        pytest.param(415, False, id="415-media-type"),
        pytest.param(413, False, id="413-too-large"),
        pytest.param(408, True, id="408-timeout"),
        pytest.param(412, True, id="412-standby"),
        pytest.param(504, True, id="504-gateway"),
    ],
)
def test_status_reaches_the_mapping_with_vaults_words(status: int, transient: bool) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StatusHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"http://127.0.0.1:{server.server_address[1]}"
    transport = VaultTransport(VaultConnection(address, "", VaultTls()), VaultSettings())
    try:
        with pytest.raises(VaultStatus) as caught:
            asyncio.run(transport.request("GET", f"status/{status}"))
    finally:
        transport.close()
        server.shutdown()
        server.server_close()
    assert (caught.value.status, caught.value.errors) == (status, (f"status {status}",))
    assert caught.value.retry_after == 2.0
    mapped = translate(caught.value, subject="object 'x'", operation="vault.GET")
    assert isinstance(mapped, Unavailable) is transient, mapped
    assert f"status {status}" in mapped.message


class _Redirect(BaseHTTPRequestHandler):
    """A standby: sends every request to the active node (``server.target``)."""

    def do_GET(self) -> None:
        self.send_response(307)
        self.send_header("Location", self.server.target + self.path)  # type: ignore[attr-defined]
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _Active(BaseHTTPRequestHandler):
    """The active node: answers with the token it was sent (to show it followed)."""

    def do_GET(self) -> None:
        body = json.dumps({"data": {"path": self.path,
                                    "token": self.headers.get("X-Vault-Token")}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


def test_a_redirect_from_a_standby_is_followed_with_the_token() -> None:
    active = ThreadingHTTPServer(("127.0.0.1", 0), _Active)
    standby = ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
    standby.target = f"http://127.0.0.1:{active.server_address[1]}"  # type: ignore[attr-defined]
    for server in (active, standby):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"http://127.0.0.1:{standby.server_address[1]}"
    transport = VaultTransport(VaultConnection(address, "", VaultTls()), VaultSettings())
    try:
        answer = asyncio.run(transport.request("GET", "secret/data/app", token="t0ken"))
    finally:
        transport.close()
        for server in (active, standby):
            server.shutdown()
            server.server_close()
    assert answer == {"data": {"path": "/v1/secret/data/app", "token": "t0ken"}}


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param({}, None, id="none"),
        pytest.param({"HTTPS_PROXY": "http://proxy:3128"}, "http://proxy:3128", id="https"),
        pytest.param({"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "vault.internal"}, None,
                     id="no-proxy"),
        pytest.param({"HTTP_PROXY": "http://proxy:3128"}, None, id="other-scheme"),
    ],
)
def test_proxy_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], expected: str | None
) -> None:
    from provider.backends.vault.transport import _proxy_for

    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "https_proxy",
                 "http_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert _proxy_for("https://vault.internal:8200") == expected


def test_tls_files_are_checked_for_a_plain_http_address_too() -> None:
    connection = VaultConnection("http://127.0.0.1:9", "", VaultTls(ca_cert="/nonexistent/ca"))
    with pytest.raises(InvalidRequest) as caught:
        VaultTransport(connection, VaultSettings())
    assert caught.value.code == "TLSFailed" and "'vaultCACertPath'" in caught.value.message
