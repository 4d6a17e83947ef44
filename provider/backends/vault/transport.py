"""One reusable HTTP session per Vault connection (address, namespace, TLS).

TLS handshakes cost more than the reads themselves, so every mount that talks
to the same Vault with the same TLS settings shares one requests session and
its keep-alive pool, whatever pod it mounts for. Tokens are never stored on
the session: each request carries its own (see ``auth``), so sharing a session
never shares an identity.

The TLS context is built here rather than by requests, because the Vault
dialect needs what requests cannot say: a CA *directory* of plain PEM files
(as Vault's client reads it, no hashed names needed) and a TLS server name
that differs from the address. urllib3's own retries are off: the provider's
retry loop honours the mount deadline.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import hvac.adapters
import hvac.exceptions as hx
import requests
import requests.adapters
import urllib3.connectionpool

from provider.backends.httpsession import LeanSession
from provider.backends.vault import VaultSettings, VaultTls
from provider.backends.vault.config import VaultConnection
from provider.cache import Cache
from provider.codes import ErrorCode
from provider.errors import InvalidRequest
from provider.retry import parse_retry_after


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


class VaultHTTPAdapter(requests.adapters.HTTPAdapter):
    """A requests adapter whose TLS comes from our context, not from ``verify``."""

    def __init__(self, ctx: ssl.SSLContext, tls: VaultTls, pool_size: int) -> None:
        self._ctx = ctx
        self._tls = tls
        super().__init__(pool_connections=2, pool_maxsize=pool_size, max_retries=0)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False,
                         **pool_kwargs: Any) -> None:
        pool_kwargs["ssl_context"] = self._ctx
        if self._tls.server_name:
            # SNI and certificate verification use this name instead of the address's.
            pool_kwargs["server_hostname"] = self._tls.server_name
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        if self._tls.skip_verify:
            self.poolmanager.pool_classes_by_scheme = {
                "http": urllib3.connectionpool.HTTPConnectionPool,
                "https": _QuietHTTPSPool,
            }

    def build_connection_pool_key_attributes(
        self, request: Any, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, _ = super().build_connection_pool_key_attributes(request, verify, cert)
        return host_params, {}  # everything TLS is in the pool manager's context

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        return None  # the context decides; requests would reset it from `verify`


# 4xx answers that a retry may cure: request timeout, a performance standby
# not yet consistent (412), too early, rate limited.
_TRANSIENT_4XX = frozenset({408, 412, 425, 429})


class UnusableAnswer(ValueError):
    """A 2xx answer that is not what Vault sends (not JSON, not an object).

    The reason names the shape only, never the body.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StatusAwareAdapter(hvac.adapters.JSONAdapter):  # type: ignore[misc]  # hvac is untyped
    """hvac's adapter, with the statuses hvac leaves unmapped made precise.

    hvac raises ``UnexpectedError`` for every status outside its table (405,
    412, 413, 415, 504, ...) and keeps no status code, so "this method is not
    supported at this path" would look as transient as a gateway timeout and
    the driver would retry it forever. The status is known here, so this is
    where it becomes the right class; the error translation then needs no
    guesswork.
    """

    def request(self, *args: Any, **kwargs: Any) -> Any:
        """Vault's answer as a JSON object; None for 204 No Content.

        hvac's JSONAdapter hands back the raw response when a 200 is not JSON,
        which reads as "no data" (NotFound) or "no token" (AuthFailed). Vault
        only ever answers a JSON object: anything else came from something in
        between or was cut short, and is UnusableAnswer (retried).
        """
        response = hvac.adapters.RawAdapter.request(self, *args, **kwargs)
        if response.status_code == 204:
            return None
        try:
            body = response.json()
        except ValueError:
            raise UnusableAnswer("is not JSON") from None
        if not isinstance(body, dict):
            raise UnusableAnswer("is not a JSON object")
        return body

    def _raise_for_error(self, method: str, url: str, response: requests.Response) -> None:
        try:
            self._raise_precise(method, url, response)
        except hx.VaultError as exc:
            # A 429 or 503 may say when to come back; the retry loop honours it.
            exc.retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise

    def _raise_precise(self, method: str, url: str, response: requests.Response) -> None:
        try:
            super()._raise_for_error(method, url, response)
        except hx.UnexpectedError as exc:
            status = response.status_code
            if status == 405:
                better: type[hx.VaultError] = hx.UnsupportedOperation
            elif status == 412:  # a performance standby not yet caught up: retry
                better = hx.PreconditionFailed
            elif 400 <= status < 500 and status not in _TRANSIENT_4XX:
                better = hx.InvalidRequest
            else:
                raise
            raise better(
                exc.args[0] if exc.args else None, errors=exc.errors, method=method, url=url,
                text=exc.text, json=exc.json,
            ) from None


class VaultTransport:
    """A session for one VaultConnection; hands out per-token hvac adapters."""

    def __init__(self, connection: VaultConnection, settings: VaultSettings) -> None:
        self.connection = connection
        self._timeout = (settings.connect_timeout, settings.read_timeout)
        ctx = build_ssl_context(connection.tls)
        self.session = LeanSession()  # no cookie jar work per request (see httpsession)
        # No .netrc, no REQUESTS_CA_BUNDLE: TLS is exactly what the parameters say.
        self.session.trust_env = False
        self.session.proxies = requests.utils.get_environ_proxies(connection.address)
        adapter = VaultHTTPAdapter(ctx, connection.tls, settings.max_connections)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)

    def adapter(self, token: str | None) -> hvac.adapters.JSONAdapter:
        """A cheap adapter over the shared session, carrying one token."""
        return StatusAwareAdapter(
            base_uri=self.connection.address,
            token=token,
            session=self.session,
            namespace=self.connection.namespace or None,
            timeout=self._timeout,
        )

    def close(self) -> None:
        self.session.close()


# Distinct connections kept (address x namespace x TLS: a class chooses them).
# Each costs a session, an SSL context and its pooled sockets (~0.8 MiB and up
# fds), so the least recently used beyond this are closed.
MAX_TRANSPORTS = 64
# What one costs: 600 distinct vaultAddress values took +496 MiB (issue 10).
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
