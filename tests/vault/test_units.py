"""Pieces without a server: exception mapping, settings precedence, Go-style JSON."""

from __future__ import annotations

import argparse
import inspect
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import hvac.exceptions as hx
import pytest
import requests.exceptions as rx

from provider.backends.vault import VaultSettings, VaultTls, add_flags, load_settings
from provider.backends.vault.config import api_path, parse_plan
from provider.backends.vault.errors import translate
from provider.backends.vault.render import go_json, whole_response
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
    if issubclass(cls, hx.VaultError):
        return cls("boom", errors=["boom"], method="get", url="http://v/v1/x")
    if issubclass(cls, rx.JSONDecodeError):
        return cls("boom", "<html>", 0)
    return cls("boom")


@pytest.mark.parametrize("cls", _classes(hx, hx.VaultError) + _classes(rx, rx.RequestException),
                         ids=lambda c: f"{c.__module__}.{c.__name__}")
@pytest.mark.parametrize("login", [False, True], ids=["read", "login"])
def test_every_sdk_exception_is_mapped(cls: type[BaseException], login: bool) -> None:
    result = translate(_instance(cls), subject="object 'x'", operation="GET x", login=login)
    assert_mapped(result, cls, "object 'x'")


@pytest.mark.parametrize(
    ("exc", "login", "expected", "code"),
    [
        pytest.param(hx.Forbidden(errors=["permission denied"]), False, PermissionDenied,
                     "AccessDenied", id="403-read"),
        pytest.param(hx.Forbidden(errors=["permission denied"]), True, PermissionDenied,
                     "AuthFailed", id="403-login"),
        pytest.param(hx.InvalidRequest(errors=["role not found"]), True, PermissionDenied,
                     "AuthFailed", id="400-login"),
        pytest.param(hx.InvalidRequest(errors=["bad"]), False, InvalidRequest,
                     "BackendRejected", id="400-read"),
        pytest.param(hx.InvalidPath(), False, NotFound, "ObjectNotFound", id="404"),
        pytest.param(hx.VaultDown(errors=["Vault is sealed"]), False, Unavailable,
                     "BackendUnavailable", id="sealed"),
        pytest.param(hx.RateLimitExceeded(), False, Unavailable, "Throttled", id="429"),
        pytest.param(rx.ConnectionError("refused"), False, Unavailable, "BackendUnavailable",
                     id="refused"),
        pytest.param(rx.SSLError("certificate verify failed"), False, InvalidRequest,
                     "TLSFailed", id="tls-verify"),
        pytest.param(rx.SSLError("EOF occurred in violation of protocol"), False, Unavailable,
                     "BackendUnavailable", id="tls-transient"),
        pytest.param(rx.InvalidURL("x"), False, InvalidParameters, "InvalidParameters",
                     id="bad-url"),
    ],
)
def test_mapping(exc: BaseException, login: bool, expected: type[ProviderError],
                 code: str) -> None:
    result = translate(exc, subject="s", operation="op", login=login)
    assert type(result) is expected and result.code == code


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
                       "objects": "- {objectName: a, secretPath: x}"}, 0o644, s)
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
    plan = parse_plan({"roleName": "r", "objects": objects}, 0o644, VaultSettings())
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
    """Answers GET /v1/status/<code> with that status and a Vault-style error body.

    A local stand-in because OpenBao cannot be made to answer 415 or 504 on demand.
    """

    def do_GET(self) -> None:
        status = int(self.path.rsplit("/", 1)[-1])
        body = b'{"errors":["status ' + str(status).encode() + b'"]}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.mark.parametrize(
    ("status", "raised", "transient"),
    [
        pytest.param(405, hx.UnsupportedOperation, False, id="405-method"),
        pytest.param(415, hx.InvalidRequest, False, id="415-media-type"),
        pytest.param(413, hx.InvalidRequest, False, id="413-too-large"),
        pytest.param(408, hx.UnexpectedError, True, id="408-timeout"),
        pytest.param(412, hx.PreconditionFailed, True, id="412-standby"),
        pytest.param(504, hx.UnexpectedError, True, id="504-gateway"),
    ],
)
def test_statuses_hvac_leaves_unmapped(status: int, raised: type, transient: bool) -> None:
    from provider.backends.vault.transport import StatusAwareAdapter

    server = ThreadingHTTPServer(("127.0.0.1", 0), _StatusHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        adapter = StatusAwareAdapter(base_uri=f"http://127.0.0.1:{server.server_address[1]}")
        with pytest.raises(hx.VaultError) as caught:
            adapter.get(f"/v1/status/{status}")
        adapter.close()
    finally:
        server.shutdown()
        server.server_close()
    assert type(caught.value) is raised
    assert caught.value.errors == [f"status {status}"]
    mapped = translate(caught.value, subject="object 'x'", operation="GET status")
    assert isinstance(mapped, Unavailable) is transient, mapped
