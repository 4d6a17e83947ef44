"""One reusable HTTP connection pool per Vault connection (address, namespace, TLS).

Vault's API is a handful of JSON requests (a login, reads, lists), so the
provider speaks it over urllib3 directly: hvac and requests added ~0.3 ms of
CPU per read on top of urllib3's own work (header and cookie merging, proxy and
.netrc lookups, URL requoting, hvac's adapter per token), which was most of a
cold mount's cost (issue 16, bench/cost.py). What this module does is only
transport; what an answer means (statuses, broken bodies, TLS failures) is
decided in ``errors``.

TLS handshakes cost more than the reads themselves, so every mount that talks
to the same Vault with the same TLS settings shares one pool and its
keep-alive connections, whatever pod it mounts for. Tokens are never stored
on the pool: each request carries its own, so sharing never shares an
identity. The TLS context is built here because the Vault dialect needs a CA
*directory* of plain PEM files (as Vault's client reads it, no hashed names)
and a TLS server name that differs from the address. urllib3's retries are
off: the provider's retry loop honours the mount deadline. Redirects (a
standby sending the client to the active node) are followed, as Vault's
clients do; proxies come from the environment (``HTTPS_PROXY``, ``NO_PROXY``).
"""

from __future__ import annotations

import json
import ssl
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import urllib3
import urllib3.connectionpool

from provider.backends.jsonanswer import json_object
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


class _QuietHTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    """For skip-verify only: the user chose it; a warning per request would flood logs."""

    def _validate_conn(self, conn: Any) -> None:
        urllib3.connectionpool.HTTPConnectionPool._validate_conn(self, conn)
        if conn.is_closed:
            conn.connect()


def _proxy_for(address: str) -> str | None:
    """The proxy the environment names for ``address`` (None: direct), as requests chose it."""
    proxies = urllib.request.getproxies_environment()
    host = urlsplit(address).hostname or ""
    if not proxies or urllib.request.proxy_bypass(host):
        return None
    scheme = urlsplit(address).scheme
    return proxies.get(scheme) or proxies.get("all")


# Redirects followed; nothing else is retried here (see the module docstring).
_RETRIES = urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=5,
                         respect_retry_after_header=False)
# Characters kept as they are in a path, as requests' requote_uri keeps them.
_PATH_SAFE = "!#$%&'()*+,/:;=?@[]~"


class VaultTransport:
    """A keep-alive pool for one VaultConnection; each request carries its own token."""

    def __init__(self, connection: VaultConnection, settings: VaultSettings) -> None:
        self.connection = connection
        tls = connection.tls
        options: dict[str, Any] = {
            "maxsize": settings.max_connections,
            "timeout": urllib3.Timeout(connect=settings.connect_timeout,
                                       read=settings.read_timeout),
            "retries": _RETRIES,
        }
        https = urlsplit(connection.address).scheme == "https"
        # The TLS files are read (and checked) whenever given; but a plain-HTTP
        # address does not load the system's CA store (~0.8 MiB a pool).
        given = tls.ca_cert or tls.ca_directory or tls.client_cert
        ctx = build_ssl_context(tls) if https or given else None
        if https:
            options["ssl_context"] = ctx
            if tls.server_name:
                # SNI and certificate verification use this name instead of the address's.
                options["server_hostname"] = tls.server_name
        proxy = _proxy_for(connection.address)
        self._pools: urllib3.PoolManager = (
            urllib3.ProxyManager(proxy, num_pools=4, **options) if proxy
            else urllib3.PoolManager(num_pools=4, **options)
        )
        if tls.skip_verify:
            self._pools.pool_classes_by_scheme = {
                "http": urllib3.connectionpool.HTTPConnectionPool,
                "https": _QuietHTTPSPool,
            }
        self._base = connection.address.rstrip("/") + "/v1/"
        # Without a proxy, requests go straight to the address's pool (the
        # manager's per-request URL parsing and pool lookup were ~5% of a
        # read's CPU); the manager follows redirects and speaks to proxies.
        self._direct = None if proxy else self._pools.connection_from_url(self._base)
        self._prefix = urlsplit(self._base).path
        self._headers = {"X-Vault-Request": "true", "Accept": "application/json"}
        if connection.namespace:
            self._headers["X-Vault-Namespace"] = connection.namespace

    def request(
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
        url = quote(path, safe=_PATH_SAFE)
        if query:
            url += "?" + urlencode(query)
        response: urllib3.BaseHTTPResponse | None = None
        if self._direct is not None:
            response = self._direct.urlopen(
                method, self._prefix + url, body=payload, headers=headers, retries=False,
                redirect=False, preload_content=True,
            )
        if response is None or response.get_redirect_location():
            # Through a proxy, or redirected by a standby: the manager follows.
            response = self._pools.urlopen(method, self._base + url, body=payload,
                                           headers=headers, preload_content=True)
        status = response.status
        if status == 204:
            return None
        if status >= 400:
            raise VaultStatus(status, method, path, _errors(response.data),
                              parse_retry_after(response.headers.get("Retry-After")))
        return json_object(response.data)

    def close(self) -> None:
        self._pools.clear()


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
