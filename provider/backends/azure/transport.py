"""HTTPS to Key Vault and Azure AD: one keep-alive pool per host on the event loop, shared by
every identity.

Key Vault's reads and Azure AD's token requests are a handful of JSON
requests, so the provider sends them itself. First over urllib3 on the
backend's threads (azure-core's pipeline and requests cost ~0.7 ms of CPU per
GET, and ~10 MiB of imports); now on the event loop through the small HTTP/1.1
client in ``provider.backends.http1``, as Vault's: a read with its JSON and
rendering costs 0.13 ms of CPU instead of urllib3's 0.25 (headers parsed
through the email package; bench/azure_get.py), and no thread hand-off and
GIL turn per read: a cold 10-object mount 3.5 ms instead of 6.8, a 50-object
one 10.8 instead of 25 (bench/README.md, issue 16). This module is
only transport; what an answer means is decided by the callers (``clients``,
``tokens``) and ``errors``.

One keep-alive pool per origin (scheme, host, port), whatever pod it serves:
the bearer token travels with each request, never with the pool, so sharing
the TLS connections never shares an identity. What stays as before:

* TLS verification against ``--azure-ca-file``, else REQUESTS_CA_BUNDLE /
  CURL_CA_BUNDLE, else certifi's bundle (what requests trusted), else the
  system's;
* no redirect is followed (a 3xx is an answer, so an error): a bearer token is
  never sent where a Location points;
* proxies from the environment (HTTPS_PROXY, NO_PROXY), read once per host
  (an ``http://`` proxy: a CONNECT tunnel for https);
* no retries here: ``FetchContext.call_async`` retries inside the mount deadline;
* a stalled or dripping answer is cut at the mount deadline: the request is
  cancelled and its connection closed, never reused (``http1.Pool``).

Answers are ``http1.Answer``: header names lower-cased.
"""

from __future__ import annotations

import os
import ssl
from urllib.parse import urlsplit

from provider.backends import http1
from provider.backends.http1 import Answer, Origin

__all__ = ["MAX_POOLS", "Answer", "Pools", "ssl_context"]

# Distinct hosts kept (the vaults classes name, and the authorities); each costs
# a pool and its idle sockets, so the least recently used beyond this are closed.
MAX_POOLS = 64


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


class Pools:
    """origin -> keep-alive connection pool; ``send`` one request and read its answer."""

    def __init__(
        self, *, ca_file: str, connect_timeout: float, read_timeout: float,
        max_connections: int, max_pools: int = MAX_POOLS,
    ) -> None:
        # One http1 pool per origin (vaults and authorities), shared by every identity.
        self._pools = http1.Pools(
            "azure.pools", ssl_context=lambda: ssl_context(ca_file),
            max_connections=max_connections, connect_timeout=connect_timeout,
            read_timeout=read_timeout, max_pools=max_pools,
        )

    async def send(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None = None
    ) -> Answer:
        """``method url``, its answer read whole; http1's or the standard library's exceptions
        for a failed exchange (ValueError for a URL or header a request cannot carry)."""
        split = urlsplit(url)
        target = split.path or "/"
        if split.query:
            target += "?" + split.query
        return await self._pools.get(Origin.of(url)).request(method, target, headers, body)

    def close(self) -> None:
        """Close every pool's connections (idle ones now, busy ones when their answer is in)."""
        self._pools.close()
