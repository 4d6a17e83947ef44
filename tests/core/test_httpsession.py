"""LeanSession prepares requests as requests.Session does, minus cookies.

Compared with requests' own Session on the same inputs: the environment
(proxies, NO_PROXY, CA bundle, ~/.netrc) must decide exactly what it decides
there; and a cookie one server response sets is never sent back (the session
is shared by every identity talking to that server).
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import requests

from provider.backends.httpsession import LeanSession

URLS = [
    "https://vault.example.com:8200/v1/secret/data/a",
    "https://myvault.vault.azure.net/secrets/s?api-version=7.6",
    "http://internal.corp.local/v1/x",
    "https://login.microsoftonline.com/tenant/oauth2/v2.0/token",
]


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.com:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example.com:3129")
    monkeypatch.setenv("NO_PROXY", "corp.local,.vault.azure.net")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "ca.pem"))
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine internal.corp.local login alice password wonderland\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))


@pytest.mark.usefixtures("environment")
@pytest.mark.parametrize("url", URLS)
def test_environment_as_requests_reads_it(url: str) -> None:
    lean, plain = LeanSession(), requests.Session()
    for verify in (True, None, False, "/etc/other.pem"):
        for proxies in ({}, {"https": "http://explicit:1"}):
            assert lean.merge_environment_settings(
                url, dict(proxies), None, verify, None
            ) == plain.merge_environment_settings(url, dict(proxies), None, verify, None)
    for method, kwargs in (
        ("GET", {"params": [("list", "true")], "headers": {"X-Vault-Token": "t"}}),
        ("POST", {"json": {"role": "r"}, "headers": {"Accept": None}}),
    ):
        b = plain.prepare_request(requests.Request(method, url, **kwargs))  # type: ignore[arg-type]
        for _ in range(2):  # the second time from the URLs it remembers
            a = lean.prepare_request(requests.Request(method, url, **kwargs))  # type: ignore[arg-type]
            assert (a.method, a.url, a.body) == (b.method, b.url, b.body)
            assert dict(a.headers) == dict(b.headers)
    # The netrc login is applied to its host only, as requests does.
    prepared = lean.prepare_request(requests.Request("GET", url))
    assert ("Authorization" in prepared.headers) == ("corp.local" in url)


class _CookieServer(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.headers.get("Cookie"))
        self.send_response(200)
        self.send_header("Set-Cookie", "sticky=pod-a; Path=/")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def cookie_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CookieServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_no_cookie_travels_between_requests(cookie_server: str) -> None:
    _CookieServer.seen = []
    plain = requests.Session()
    plain.trust_env = False
    plain.get(cookie_server)
    plain.get(cookie_server)
    assert _CookieServer.seen == [None, "sticky=pod-a"]  # requests' default: it would
    _CookieServer.seen = []
    lean = LeanSession()
    lean.trust_env = False
    lean.get(cookie_server)
    lean.get(cookie_server)
    assert _CookieServer.seen == [None, None]
    assert len(lean.cookies) == 0


class _RedirectServer(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/standby":  # a Vault standby sends reads to the active node
            self.send_response(307)
            self.send_header("Location", "/active")
            self.send_header("Set-Cookie", "node=standby; Path=/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b'{"cookie": "%s"}' % (self.headers.get("Cookie") or "").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


def test_redirects_are_followed_without_cookies() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RedirectServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        lean = LeanSession()
        lean.trust_env = False
        answer = lean.get(f"http://127.0.0.1:{server.server_address[1]}/standby")
        assert answer.status_code == 200
        assert answer.json() == {"cookie": ""}
        assert [r.status_code for r in answer.history] == [307]
    finally:
        server.shutdown()
        server.server_close()
