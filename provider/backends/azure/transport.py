"""HTTPS to Key Vault and Azure AD: one urllib3 pool per host, shared by every identity.

Key Vault's reads and Azure AD's token requests are a handful of JSON
requests, so the provider sends them over urllib3 directly: azure-core's
pipeline and requests cost ~0.7 ms of CPU per Key Vault GET against ~0.25 for
urllib3 itself (bench/azure_get.py), and ~10 MiB of imports (issue 16). This
module is only transport; what an answer means is decided by the callers
(``clients``, ``tokens``) and ``errors``.

One keep-alive pool per origin (scheme, host, port), whatever pod it serves:
the bearer token travels with each request, never with the pool, so sharing
the TLS connections never shares an identity. What stays as before:

* TLS verification against ``--azure-ca-file``, else REQUESTS_CA_BUNDLE /
  CURL_CA_BUNDLE, else certifi's bundle (what requests trusted), else the
  system's;
* no redirect is followed (a 3xx is an answer, so an error): a bearer token is
  never sent where a Location points;
* proxies from the environment (HTTPS_PROXY, NO_PROXY), read once per host;
* no retries here: ``FetchContext.call`` retries inside the mount deadline;
* the sockets are urllib3's, so ``provider.calltime`` cuts a stalled or
  dripping answer at the deadline (it hooks every pool's connection check-out).
"""

from __future__ import annotations

import os
import ssl
import threading
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import urllib3
import urllib3.connectionpool

from provider.cache import Cache

# Distinct hosts kept (the vaults classes name, and the authorities); each costs
# a pool and its idle sockets, so the least recently used beyond this are closed.
MAX_POOLS = 64


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, read whole."""

    status: int
    headers: Any  # urllib3.HTTPHeaderDict: case-insensitive
    data: bytes


def _ca_bundle(ca_file: str) -> str | None:
    """The CA bundle file to trust, as requests chose it; None: the system's store."""
    if ca_file:
        return ca_file
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        if value := os.environ.get(variable):
            return value
    try:
        import certifi
    except ImportError:
        return None
    return str(certifi.where())


def ssl_context(ca_file: str) -> ssl.SSLContext:
    """The client TLS context for every Azure host (verification always on)."""
    return ssl.create_default_context(cafile=_ca_bundle(ca_file))


def _proxy_for(origin: str) -> str | None:
    """The proxy the environment names for ``origin`` (None: direct), as requests chose it."""
    proxies = urllib.request.getproxies_environment()
    host = urlsplit(origin).hostname or ""
    if not proxies or urllib.request.proxy_bypass(host):
        return None
    return proxies.get(urlsplit(origin).scheme) or proxies.get("all")


class Pools:
    """origin -> keep-alive connection pool; ``send`` one request and read its answer."""

    def __init__(
        self, *, ca_file: str, connect_timeout: float, read_timeout: float,
        max_connections: int, max_pools: int = MAX_POOLS,
    ) -> None:
        self._ca_file = ca_file
        self._context: ssl.SSLContext | None = None  # built on first use (the CA files' cost)
        self._options: dict[str, Any] = {
            "maxsize": max_connections,
            # A burst beyond maxsize opens more connections rather than waiting.
            "block": False,
            "timeout": urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            "retries": False,
        }
        self._pools: Cache[str, urllib3.connectionpool.HTTPConnectionPool] = Cache(
            "azure.pools", max_entries=max_pools, on_evict=lambda _o, pool: pool.close()
        )
        self._lock = threading.Lock()  # one pool per origin, even when mounts race

    def _pool(self, origin: str) -> urllib3.connectionpool.HTTPConnectionPool:
        pool = self._pools.peek(origin)
        if pool is not None:
            return pool
        with self._lock:
            return self._pools.peek(origin) or self._new_pool(origin)

    def _new_pool(self, origin: str) -> urllib3.connectionpool.HTTPConnectionPool:
        options = dict(self._options)
        if origin.startswith("https:"):
            if self._context is None:
                self._context = ssl_context(self._ca_file)
            options["ssl_context"] = self._context
        proxy = _proxy_for(origin)
        manager: urllib3.PoolManager = (
            urllib3.ProxyManager(proxy, num_pools=1, **options) if proxy
            else urllib3.PoolManager(num_pools=1, **options)
        )
        return self._pools.put(origin, manager.connection_from_url(origin))

    def send(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None = None
    ) -> Answer:
        """``method url``, its answer read whole; urllib3's exceptions for a failed exchange."""
        split = urlsplit(url)
        target = split.path or "/"
        if split.query:
            target += "?" + split.query
        pool = self._pool(f"{split.scheme}://{split.netloc}")
        response = pool.urlopen(
            method, target, body=body, headers=headers, retries=False, redirect=False,
            preload_content=True, assert_same_host=False,
        )
        return Answer(response.status, response.headers, response.data)

    def close(self) -> None:
        self._pools.clear()
