"""A requests Session that does per host what requests redoes per request.

azure-core sends every request of azure-identity's VM managed identity
credential (the one flow still on the SDK) through
``requests.Session.request``. For each one, requests merges cookie jars (a
new jar and a deep copy of the session's), merges headers through generic
key/value list conversions, and, with ``trust_env``, reads the proxy
variables, evaluates NO_PROXY and looks for a ~/.netrc. On loopback that was
about a quarter of a Vault read's CPU (issue 16; bench/cost.py).

This session keeps requests' sending, redirect and error handling as they are
and changes only the preparation:

- the environment (proxies, NO_PROXY, ~/.netrc, REQUESTS_CA_BUNDLE) is read as
  requests reads it, once per scheme and host, since the provider's
  environment is fixed for its life;
- a URL is parsed and requoted once, not on every request;
- no cookies are kept or sent. The session is shared by every pod identity
  talking to one server, so a cookie set for one pod's request would travel
  with another's; the Go providers keep no cookie jar either.
"""

from __future__ import annotations

import http.cookiejar
import os
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.cookies
import requests.utils
from requests.sessions import merge_hooks
from requests.structures import CaseInsensitiveDict

# Distinct hosts whose environment settings are kept (a few Vault addresses,
# Key Vaults, Azure AD); beyond this the table starts again.
MAX_HOSTS = 256
# Distinct request URLs whose prepared form is kept (an object's path and
# query; ~200 bytes each), beyond this the table starts again.
MAX_URLS = 4096


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """Accepts no cookie from any server (see the module docstring)."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False


_NO_COOKIES = _NoCookies()


class LeanSession(requests.Session):
    """requests.Session with the environment read per host and no cookie jar work."""

    def __init__(self) -> None:
        super().__init__()
        self.cookies.set_policy(_NO_COOKIES)
        self._hosts: dict[tuple[str, str], tuple[dict[str, str], Any]] = {}
        self._urls: dict[tuple[str, tuple[Any, ...]], str] = {}

    def _environment(self, url: str) -> tuple[dict[str, str], Any]:
        """The proxies and the ~/.netrc login requests would find for ``url``'s host."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        found = self._hosts.get(key)
        if found is None:
            if len(self._hosts) >= MAX_HOSTS:
                self._hosts.clear()
            found = (
                requests.utils.get_environ_proxies(url),
                requests.utils.get_netrc_auth(url),
            )
            self._hosts[key] = found
        return found

    def _prepare_url(self, prepared: requests.PreparedRequest, url: str, params: Any) -> None:
        """``prepared.prepare_url``, remembered: the same objects are read on every
        mount, and parsing, IDNA-checking and requoting a URL was a tenth of a
        Key Vault GET's CPU."""
        if isinstance(params, str | bytes):
            prepared.prepare_url(url, params)
            return
        try:
            items = params.items() if isinstance(params, dict) else params or ()
            key = (url, tuple(items))
            hash(key)
        except TypeError:  # not a shape worth remembering
            prepared.prepare_url(url, params)
            return
        known = self._urls.get(key)
        if known is None:
            prepared.prepare_url(url, params)
            if len(self._urls) >= MAX_URLS:
                self._urls.clear()
            self._urls[key] = prepared.url or ""
        else:
            prepared.url = known

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        url = request.url
        if request.cookies or self.auth is not None or self.params or not isinstance(url, str):
            return super().prepare_request(request)  # not a shape our SDKs send
        auth = request.auth
        if self.trust_env and not auth:
            auth = self._environment(url)[1]
        # requests.sessions.merge_setting: the request's headers over the
        # session's, and a header set to None removed.
        headers: CaseInsensitiveDict[Any] = CaseInsensitiveDict(self.headers)
        if request.headers:
            headers.update(request.headers)
            for name in [k for k, v in headers.items() if v is None]:
                del headers[name]
        prepared = requests.PreparedRequest()
        prepared.prepare_method(request.method)
        self._prepare_url(prepared, url, request.params)
        prepared.prepare_headers(headers)
        prepared.prepare_body(request.data, request.files, request.json)
        # What prepare_cookies would leave: an (empty) jar, which requests'
        # redirect handling reads; no Cookie header, as no cookie is accepted.
        prepared._cookies = requests.cookies.RequestsCookieJar(policy=_NO_COOKIES)
        prepared.prepare_auth(auth, url)
        prepared.prepare_hooks(merge_hooks(request.hooks, self.hooks))
        return prepared

    def merge_environment_settings(
        self,
        url: str,
        proxies: Any,
        stream: Any,
        verify: Any,
        cert: Any,
    ) -> dict[str, Any]:
        if not self.trust_env:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        proxies = dict(proxies or {})
        if "no_proxy" in proxies:
            # A per-call NO_PROXY changes the answer: requests' own way.
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        for name, value in self._environment(url)[0].items():
            proxies.setdefault(name, value)
        if verify is True or verify is None:
            verify = (
                os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or verify
            )
        # requests.sessions.merge_setting, as requests merges after this point.
        merged = {**self.proxies, **proxies}
        return {
            "proxies": {k: v for k, v in merged.items() if v is not None},
            "stream": self.stream if stream is None else stream,
            "verify": self.verify if verify is None else verify,
            "cert": self.cert if cert is None else cert,
        }
