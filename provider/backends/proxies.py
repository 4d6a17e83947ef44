"""The HTTP proxy the provider's environment names for a URL (HTTPS_PROXY, NO_PROXY & co).

Shared by everything that speaks HTTP through ``provider.backends.http1``:
Vault, Key Vault and Entra ID, and AWS's hot reads. Chosen as requests and
botocore choose it (urllib's reading of the environment), plus NO_PROXY
networks ("10.0.0.0/8"), which Go's clients and requests honour and urllib
does not.
"""

from __future__ import annotations

import contextlib
import ipaddress
import urllib.request
from urllib.parse import urlsplit


def proxy_for(address: str) -> str | None:
    """The proxy the environment names for ``address`` (None: direct)."""
    proxies = urllib.request.getproxies_environment()
    host = urlsplit(address).hostname or ""
    if not proxies or urllib.request.proxy_bypass(host) or _in_no_proxy_network(host, proxies):
        return None
    scheme = urlsplit(address).scheme
    return proxies.get(scheme) or proxies.get("all")


def _in_no_proxy_network(host: str, proxies: dict[str, str]) -> bool:
    """Whether the IP ``host`` lies in a NO_PROXY network ("10.0.0.0/8")."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    for entry in proxies.get("no", "").split(","):
        if "/" in entry:
            with contextlib.suppress(ValueError):
                if address in ipaddress.ip_network(entry.strip(), strict=False):
                    return True
    return False
