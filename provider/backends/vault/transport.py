"""One reusable set of keep-alive connections per Vault connection (address, namespace, TLS).

Vault's API is a handful of JSON requests (a login, reads, lists), so the
provider speaks it directly, on the event loop, through the small HTTP/1.1
client in ``provider.backends.http1`` (why not hvac, requests or urllib3 on
threads: the figures are there and in bench/README.md). What this module does
is only transport; what an answer means (statuses, broken bodies, TLS
failures) is decided in ``errors``.

TLS handshakes cost more than the reads themselves, so every mount that talks
to the same Vault with the same TLS settings shares one pool and its
keep-alive connections, whatever pod it mounts for. Tokens are never stored
on the pool: each request carries its own, so sharing never shares an
identity. The TLS context is built here because the Vault dialect needs a CA
*directory* of plain PEM files (as Vault's client reads it, no hashed names)
and a TLS server name that differs from the address. Nothing is retried here:
the provider's retry loop honours the mount deadline. Redirects (a standby
sending the client to the active node) are followed, as Vault's clients do,
but never from https to http; proxies come from the environment
(``HTTPS_PROXY``, ``NO_PROXY``).
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urljoin, urlsplit

from provider.backends import http1
from provider.backends.http1 import Origin, Pool, Proxy, TooManyRedirects
from provider.backends.jsonanswer import json_object
from provider.backends.proxies import proxy_for as _proxy_for
from provider.backends.vault import VaultSettings, VaultTls
from provider.backends.vault.config import VaultConnection
from provider.backends.vault.errors import VaultStatus
from provider.cache import Cache
from provider.codes import ErrorCode
from provider.errors import InvalidRequest
from provider.retry import parse_retry_after

# A JSON object as Vault answers it.
Answer = dict[str, Any]


def build_ssl_context(tls: VaultTls) -> ssl.SSLContext:
    """The client TLS context for ``tls``; InvalidRequest naming the parameter at fault."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif tls.ca_cert or tls.ca_directory:
        if tls.ca_cert:
            _load_ca_file(ctx, tls.ca_cert, "vaultCACertPath")
        if tls.ca_directory:
            _load_ca_directory(ctx, tls.ca_directory)
    else:
        ctx.load_default_certs()
    if tls.client_cert:
        try:
            ctx.load_cert_chain(tls.client_cert, tls.client_key)
        except (OSError, ssl.SSLError) as exc:
            raise InvalidRequest(
                "parameters 'vaultTLSClientCertPath'/'vaultTLSClientKeyPath': cannot load the "
                f"client certificate and key ({type(exc).__name__}: {_reason(exc)})",
                code=ErrorCode.TLSFailed,
            ) from None
    return ctx


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or getattr(exc, "reason", None) or "unreadable"


def _load_ca_file(ctx: ssl.SSLContext, path: str, parameter: str) -> None:
    try:
        ctx.load_verify_locations(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidRequest(
            f"parameter {parameter!r}: cannot load CA certificates from {path!r} "
            f"({type(exc).__name__}: {_reason(exc)})",
            code=ErrorCode.TLSFailed,
        ) from None


def _load_ca_directory(ctx: ssl.SSLContext, directory: str) -> None:
    """Every PEM file in ``directory`` (like Vault's CAPath; no c_rehash needed)."""
    root = Path(directory)
    if not root.is_dir():
        raise InvalidRequest(
            f"parameter 'vaultCADirectory': {directory!r} is not a readable directory",
            code=ErrorCode.TLSFailed,
        )
    loaded = 0
    for entry in sorted(root.iterdir()):
        if not entry.is_file():
            continue
        try:
            ctx.load_verify_locations(cafile=str(entry))
            loaded += 1
        except (OSError, ssl.SSLError):
            continue  # not a certificate (a README, a key): skipped, as Vault does
    if not loaded:
        raise InvalidRequest(
            f"parameter 'vaultCADirectory': no PEM certificate found in {directory!r}",
            code=ErrorCode.TLSFailed,
        )


# Characters kept as they are in a path, as requests' requote_uri keeps them.
_PATH_SAFE = "!#$%&'()*+,/:;=?@[]~"
# Redirects followed for one request (a standby sends the client to the active node).
MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Other origins a transport keeps connections to (where standbys redirect).
MAX_REDIRECT_ORIGINS = 4


class VaultTransport:
    """Keep-alive connections for one VaultConnection; each request carries its own token."""

    def __init__(self, connection: VaultConnection, settings: VaultSettings) -> None:
        self.connection = connection
        tls = connection.tls
        origin = Origin.of(connection.address)  # ValueError: an unusable vaultAddress
        # The TLS files are read (and checked) whenever given; but a plain-HTTP
        # address does not load the system's CA store (~0.8 MiB a pool).
        given = tls.ca_cert or tls.ca_directory or tls.client_cert
        self._ssl = build_ssl_context(tls) if origin.scheme == "https" or given else None
        self._settings = settings
        self._pool = self._new_pool(origin)
        # Pools of the origins a standby redirected to, least recently used first.
        self._others: dict[Origin, Pool] = {}
        self._prefix = urlsplit(connection.address).path.rstrip("/") + "/v1/"
        self._headers = {"X-Vault-Request": "true", "Accept": "application/json"}
        if connection.namespace:
            self._headers["X-Vault-Namespace"] = connection.namespace

    def _new_pool(self, origin: Origin) -> Pool:
        settings = self._settings
        if origin.scheme == "https" and self._ssl is None:
            self._ssl = build_ssl_context(self.connection.tls)  # an http standby sent us there
        # Chosen per origin: NO_PROXY may name the node a standby redirects to.
        proxy = _proxy_for(f"{origin.scheme}://{origin.netloc}")
        return Pool(
            origin,
            ssl_context=self._ssl,
            server_hostname=self.connection.tls.server_name,  # SNI and verification, if set
            proxy=Proxy.of(proxy) if proxy else None,
            max_connections=settings.max_connections,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        query: tuple[tuple[str, str], ...] = (),
        body: object = None,
    ) -> Answer | None:
        """Vault's JSON answer to ``method /v1/<path>``; None for 204 No Content.

        Raises VaultStatus for an error status and UnusableAnswer for a 2xx
        that is not a JSON object (something in between answered, or the
        body was cut): ``errors`` says what each means.
        """
        headers = dict(self._headers)
        if token:
            headers["X-Vault-Token"] = token
        payload: bytes | None = None
        if body is not None:
            payload = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        while "//" in path:  # Vault reads a double slash as one; so did hvac
            path = path.replace("//", "/")
        target = self._prefix + quote(path, safe=_PATH_SAFE)
        if query:
            target += "?" + urlencode(query)
        response = await self._pool.request(method, target, headers, payload)
        if response.status in _REDIRECTS:
            response = await self._follow(response, method, target, headers, payload)
        status = response.status
        if status == 204:
            return None
        if status >= 400:
            raise VaultStatus(status, method, path, _errors(response.body),
                              parse_retry_after(response.headers.get("retry-after")))
        return json_object(response.body)

    async def _follow(
        self, response: http1.Answer, method: str, target: str, headers: dict[str, str],
        payload: bytes | None,
    ) -> http1.Answer:
        """Follow a standby's redirects to the active node (token and body kept, as
        Vault's clients do; a 303 becomes a GET without a body)."""
        origin = self._pool.origin
        url = f"{origin.scheme}://{origin.netloc}{target}"
        for _ in range(MAX_REDIRECTS):
            location = response.headers.get("location")
            if response.status not in _REDIRECTS or not location:
                return response
            url = urljoin(url, location)
            origin = Origin.of(url)
            if origin.scheme == "http" and self._pool.origin.scheme == "https":
                raise TooManyRedirects("a redirect from https to http")  # the token would leak
            if response.status == 303:
                method, payload = "GET", None
            parts = urlsplit(url)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            response = await self._pool_for(origin).request(method, target, headers, payload)
        if response.status in _REDIRECTS and response.headers.get("location"):
            raise TooManyRedirects(f"more than {MAX_REDIRECTS} redirects")
        return response

    def _pool_for(self, origin: Origin) -> Pool:
        if origin == self._pool.origin:
            return self._pool
        pool = self._others.pop(origin, None)
        if pool is None:
            pool = self._new_pool(origin)
            if len(self._others) >= MAX_REDIRECT_ORIGINS:
                self._others.pop(next(iter(self._others))).close()
        self._others[origin] = pool  # most recently used last
        return pool

    def close(self) -> None:
        """Close the connections (idle ones now, busy ones when their answer is in)."""
        self._pool.close()
        for pool in self._others.values():
            pool.close()
        self._others.clear()


def _errors(data: bytes) -> tuple[str, ...]:
    """Vault's error strings from an error answer's body (its JSON ``errors`` list)."""
    try:
        said = json.loads(data).get("errors")
    except (ValueError, AttributeError, RecursionError):
        return ()
    items = said if isinstance(said, list) else [said] if said else []
    return tuple(" ".join(str(e).split()) for e in items if e)


# Distinct connections kept (address x namespace x TLS: a class chooses them).
# Each costs a pool, an SSL context and its pooled sockets, so the least
# recently used beyond this are closed.
MAX_TRANSPORTS = 64
# What one may cost, counted for every pool: an https pool holding the system's
# CA store is ~0.8 MiB; a plain-HTTP one far less (600 distinct http addresses:
# +6 MiB with 64 kept, bench/rotation.py; +98 MiB with requests sessions).
TRANSPORT_BYTES = 850 * 1024


def transport_cache(max_entries: int = MAX_TRANSPORTS) -> Cache[VaultConnection, VaultTransport]:
    """VaultConnection -> VaultTransport; evicting one closes its connections."""
    return Cache(
        "vault.transports",
        max_entries=max_entries,
        max_bytes=max_entries * TRANSPORT_BYTES,
        size_of=lambda _t: TRANSPORT_BYTES,
        on_evict=lambda _c, t: t.close(),
    )
