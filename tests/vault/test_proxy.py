"""Vault through a real HTTP proxy (proxy.py): absolute-form http, CONNECT tunnels, credentials.

The proxy comes from the environment (``HTTP_PROXY``/``HTTPS_PROXY``, read by
the transport as requests read it). What reached the proxy is read from its
own access log; what reached the server, from the server.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from provider.backends import http1
from provider.backends.http1 import Origin, Pool, Proxy
from provider.backends.vault import VaultSettings, VaultTls
from provider.backends.vault.config import VaultConnection
from provider.backends.vault.errors import translate
from provider.backends.vault.transport import VaultTransport
from provider.errors import Unavailable
from tests.support.openbao import TlsFiles, make_tls_files
from tests.support.proxypy import RunningProxy, proxy_server
from tests.support.rawserver import ok, raw_server, serve_forever_with
from tests.support.running import files_of
from tests.vault.conftest import KNOWN_SECRET, ProviderFactory, Vault

pytestmark = pytest.mark.vault

TOKEN = "s.SECRETTOKEN-proxy-0123456789"
# (urllib ignores HTTP_PROXY when REQUEST_METHOD is set, as in a CGI script.)
PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "https_proxy",
                   "http_proxy", "all_proxy", "no_proxy", "REQUEST_METHOD")
VAULT_ANSWER = ok(b'{"data": {"value": "through"}}', "Content-Type: application/json")


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Set the proxy variables (every other one unset)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def set_(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)

    return set_


@pytest.fixture(scope="module")
def proxy() -> Iterator[RunningProxy]:
    with proxy_server() as running:
        yield running


@pytest.fixture(scope="module")
def auth_proxy() -> Iterator[RunningProxy]:
    with proxy_server(basic_auth="user:p@ss") as running:
        yield running


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def _tls_server(files: TlsFiles) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(files.server_cert, files.server_key)
    return ctx


def _requests(transport: VaultTransport, paths: list[str]) -> list[Any]:
    async def main() -> list[Any]:
        try:
            return [await transport.request("GET", p, token=TOKEN) for p in paths]
        finally:
            transport.close()

    return asyncio.run(main())


def _transport(address: str, tls: VaultTls | None = None) -> VaultTransport:
    return VaultTransport(VaultConnection(address, "", tls or VaultTls()), VaultSettings())


# -- plain http: absolute-form requests ------------------------------------------


def test_the_bytes_of_a_proxied_plain_http_request() -> None:
    """What the client writes to a proxy, byte for byte (this server only records)."""
    with raw_server(serve_forever_with(VAULT_ANSWER)) as recorder:
        pool = Pool(Origin.of("http://vault.test:8200"), ssl_context=None,
                    proxy=Proxy.of(f"http://us%3Aer:p%40ss@127.0.0.1:{recorder.port}"))

        async def main() -> None:
            try:
                await pool.request("GET", "/v1/secret/data/x", {"X-Vault-Token": TOKEN})
            finally:
                pool.close()

        asyncio.run(main())
    credentials = base64.b64encode(b"us:er:p@ss").decode()
    assert recorder.requests == [
        f"GET http://vault.test:8200/v1/secret/data/x HTTP/1.1\r\nHost: vault.test:8200\r\n"
        f"Proxy-Authorization: Basic {credentials}\r\nX-Vault-Token: {TOKEN}\r\n\r\n".encode()
    ]


def test_plain_http_goes_through_the_proxy(proxy: RunningProxy,
                                           environ: Callable[..., None]) -> None:
    environ(HTTP_PROXY=proxy.url)
    with raw_server(serve_forever_with(VAULT_ANSWER)) as vault:
        answers = _requests(_transport(vault.url), ["secret/data/a", "secret/data/b"])
    assert answers == [{"data": {"value": "through"}}] * 2
    # The client wrote absolute-form requests (test above); the server got them
    # in origin form over one kept connection, the first marked by the proxy.
    assert vault.lines() == ["GET /v1/secret/data/a HTTP/1.1", "GET /v1/secret/data/b HTTP/1.1"]
    assert vault.accepted == 1
    assert b"\r\nVia: 1.1 proxy.py" in vault.requests[0]
    # proxy.py logs a kept client connection once, by its first request.
    assert proxy.wait_for(f"GET 127.0.0.1:{vault.port}/v1/secret/data/a - 200")


# -- https: a CONNECT tunnel, TLS inside ------------------------------------------


def test_https_goes_through_a_connect_tunnel(proxy: RunningProxy, tls_files: TlsFiles,
                                             environ: Callable[..., None]) -> None:
    environ(HTTPS_PROXY=proxy.url)
    with raw_server(serve_forever_with(VAULT_ANSWER), tls=_tls_server(tls_files)) as vault:
        transport = _transport(f"https://localhost:{vault.port}",
                               VaultTls(ca_cert=str(tls_files.ca_cert)))
        answers = _requests(transport, ["secret/data/a", "secret/data/b"])
    assert answers == [{"data": {"value": "through"}}] * 2
    assert vault.accepted == 1  # both requests in one kept tunnel
    assert len(vault.requests) == 2
    assert len(proxy.wait_for(f"CONNECT localhost:{vault.port}")) == 1


def test_proxy_credentials_from_the_url(auth_proxy: RunningProxy, tls_files: TlsFiles,
                                        environ: Callable[..., None]) -> None:
    environ(HTTPS_PROXY=auth_proxy.url_with("user:p%40ss"), HTTP_PROXY=auth_proxy.url_with(
        "user:p%40ss"))
    with raw_server(serve_forever_with(VAULT_ANSWER), tls=_tls_server(tls_files)) as secure, \
            raw_server(serve_forever_with(VAULT_ANSWER)) as plain:
        tunnelled = _requests(_transport(f"https://localhost:{secure.port}",
                                         VaultTls(ca_cert=str(tls_files.ca_cert))),
                              ["secret/data/a"])
        forwarded = _requests(_transport(plain.url), ["secret/data/a"])
    assert tunnelled == forwarded == [{"data": {"value": "through"}}]
    # The credentials are the proxy's: said in the CONNECT, never inside the tunnel.
    assert b"proxy-authorization" not in secure.requests[0].lower()
    assert auth_proxy.wait_for(f"CONNECT localhost:{secure.port}")
    assert auth_proxy.wait_for(f"GET 127.0.0.1:{plain.port}/v1/secret/data/a - 200")


@pytest.mark.parametrize("userinfo", ["", "user:wrong"], ids=["none", "wrong"])
def test_a_proxy_refusing_the_tunnel_is_unavailable(
    auth_proxy: RunningProxy, tls_files: TlsFiles, environ: Callable[..., None], userinfo: str,
) -> None:
    environ(HTTPS_PROXY=auth_proxy.url_with(userinfo) if userinfo else auth_proxy.url)
    with raw_server(serve_forever_with(VAULT_ANSWER), tls=_tls_server(tls_files)) as vault, \
            pytest.raises(http1.ProxyRefused, match="407") as caught:
        _requests(_transport(f"https://localhost:{vault.port}",
                             VaultTls(ca_cert=str(tls_files.ca_cert))), ["secret/data/a"])
    assert vault.accepted == 0
    mapped = translate(caught.value, subject="object 'x'", operation="vault.GET")
    assert isinstance(mapped, Unavailable) and mapped.code == "BackendUnavailable"
    assert "wrong" not in str(caught.value) and TOKEN not in mapped.message


def test_a_proxy_blocking_the_host_is_unavailable(tls_files: TlsFiles,
                                                  environ: Callable[..., None]) -> None:
    with proxy_server(blocked_hosts="vault.blocked.test") as blocking:
        environ(HTTPS_PROXY=blocking.url)
        with pytest.raises(http1.ProxyRefused, match="418") as caught:
            _requests(_transport("https://vault.blocked.test:8200",
                                 VaultTls(ca_cert=str(tls_files.ca_cert))), ["secret/data/a"])
    mapped = translate(caught.value, subject="object 'x'", operation="vault.GET")
    assert isinstance(mapped, Unavailable)


@pytest.mark.parametrize(
    "no_proxy", ["127.0.0.1", "localhost,127.0.0.0/8", " 10.0.0.0/8 , 127.0.0.0/8"],
    ids=["address", "network", "networks"],
)
def test_no_proxy_bypasses_the_proxy(proxy: RunningProxy, environ: Callable[..., None],
                                     no_proxy: str) -> None:
    # Networks too, as Go's and requests' clients read NO_PROXY (a cluster's
    # NO_PROXY usually names its service network, 10.96.0.0/12).
    environ(HTTP_PROXY=proxy.url, NO_PROXY=no_proxy)
    with raw_server(serve_forever_with(VAULT_ANSWER)) as vault:
        _requests(_transport(vault.url), ["secret/data/direct"])
    assert vault.lines() == ["GET /v1/secret/data/direct HTTP/1.1"]
    assert not proxy.wait_for(f"127.0.0.1:{vault.port}/v1/secret/data/direct", timeout=0.5)


def test_a_redirect_chooses_the_proxy_for_where_it_goes(
    proxy: RunningProxy, environ: Callable[..., None],
) -> None:
    """A standby reached through the proxy sends the client to an active node that
    NO_PROXY names: that request goes direct (Go's clients choose per request)."""
    with raw_server(serve_forever_with(VAULT_ANSWER)) as active:
        location = f"http://localhost:{active.port}/v1/secret/data/a"
        redirect = (f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\n"
                    "Content-Length: 0\r\n\r\n").encode()
        with raw_server(serve_forever_with(redirect)) as standby:
            environ(HTTP_PROXY=proxy.url, NO_PROXY="localhost")
            assert _requests(_transport(standby.url), ["secret/data/a"]) == [
                {"data": {"value": "through"}}]
    assert b"\r\nVia: 1.1 proxy.py" in standby.requests[0]
    assert active.lines() == ["GET /v1/secret/data/a HTTP/1.1"]
    assert b"\r\nVia:" not in active.requests[0]  # direct


@pytest.mark.parametrize(
    ("address", "no_proxy", "proxied"),
    [
        pytest.param("https://10.96.0.5:8200", "10.0.0.0/8", False, id="in-network"),
        pytest.param("https://10.96.0.5:8200", "192.168.0.0/16,.svc", True, id="other-network"),
        pytest.param("https://[fd00::5]:8200", "fd00::/8", False, id="ipv6-network"),
        pytest.param("https://vault.example:8200", "10.0.0.0/8", True, id="name"),
        pytest.param("https://10.96.0.5:8200", "10.0.0.0/33", True, id="not-a-network"),
    ],
)
def test_no_proxy_networks(environ: Callable[..., None], address: str, no_proxy: str,
                           proxied: bool) -> None:
    from provider.backends.vault.transport import _proxy_for

    environ(HTTPS_PROXY="http://proxy.example:3128", NO_PROXY=no_proxy)
    assert (_proxy_for(address) is not None) is proxied


# -- a mount through the proxy, from a real OpenBao ---------------------------------


def _mount_params(vault: Vault) -> dict[str, str]:
    tls = vault.server.tls
    assert tls is not None
    return {
        "roleName": "app",
        "vaultAddress": vault.server.tls_address.replace("127.0.0.1", "localhost"),
        "vaultCACertPath": str(tls.ca_cert),
        "objects": "- objectName: pw\n  secretPath: secret/data/app\n  secretKey: password",
    }


def test_a_mount_goes_through_the_proxy(
    make_provider: ProviderFactory, attrs: Callable[..., dict[str, str]], vault: Vault,
    auth_proxy: RunningProxy, environ: Callable[..., None],
) -> None:
    params = _mount_params(vault)
    port = params["vaultAddress"].rsplit(":", 1)[1]
    environ(HTTPS_PROXY=auth_proxy.url_with("user:p%40ss"))
    provider = make_provider(VaultSettings(address=vault.address))
    response = provider.mount(attrs(params))
    assert files_of(response)["pw"][1] == KNOWN_SECRET.encode()
    provider.stop()  # closes the tunnel: the proxy logs it then
    # The login and the read went through one tunnel that the proxy opened.
    assert len(auth_proxy.wait_for(f"CONNECT localhost:{port}")) == 1


def test_a_mount_through_a_proxy_that_refuses_is_unavailable(
    make_provider: ProviderFactory, attrs: Callable[..., dict[str, str]], vault: Vault,
    auth_proxy: RunningProxy, environ: Callable[..., None],
) -> None:
    environ(HTTPS_PROXY=auth_proxy.url_with("user:wrong"))
    provider = make_provider(VaultSettings(address=vault.address))
    error = provider.mount_error(attrs(_mount_params(vault)))
    assert error.code().name == "UNAVAILABLE", error.details()
    assert "wrong" not in (error.details() or "")
