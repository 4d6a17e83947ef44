"""The few Kubernetes API reads a backend may need, with a short cache.

Only two reads exist: a ServiceAccount's annotations (the IRSA role ARN) and a
Node's labels (the region). Both are small GETs, so this speaks plain HTTPS
with the provider pod's own service-account token instead of pulling in the
Kubernetes client library (tens of MiB). Results are cached for a short time:
every rotation poll of every pod would otherwise read the API server again.
The provider works without any API access when the request carries all it needs.
"""

from __future__ import annotations

import json
import os
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from provider.errors import NotFound, PermissionDenied, Unavailable

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class KubeClient:
    def __init__(
        self,
        *,
        base_url: str,
        token_file: str | None = None,
        ca_file: str | None = None,
        ttl: float = 60.0,
        timeout: float = 5.0,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._token_file = token_file
        self._ttl = ttl
        self._timeout = timeout
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._ssl: ssl.SSLContext | None = None
        if self._base.startswith("https:"):
            self._ssl = ssl.create_default_context(cafile=ca_file)

    @classmethod
    def from_environment(
        cls,
        override: str,
        environ: Mapping[str, str],
        *,
        token_file: str = "",
        ca_file: str = "",
    ) -> KubeClient | None:
        """In-cluster configuration, or ``override`` (tests, out-of-cluster use).

        ``token_file`` and ``ca_file`` replace the mounted service-account token
        and CA: in cluster they default to those, with ``override`` they are
        sent only when given (an API server outside the cluster, or a token
        mounted elsewhere, as the e2e suite runs the provider).
        """
        if override:
            return cls(base_url=override, token_file=token_file or None, ca_file=ca_file or None)
        host = environ.get("KUBERNETES_SERVICE_HOST")
        port = environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            return None
        if ":" in host:
            host = f"[{host}]"
        return cls(
            base_url=f"https://{host}:{port}",
            token_file=token_file or os.path.join(SA_DIR, "token"),
            ca_file=ca_file or os.path.join(SA_DIR, "ca.crt"),
        )

    def _peek(self, path: str) -> dict[str, Any] | None:
        with self._lock:
            hit = self._cache.get(path)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def _get(self, path: str, what: str) -> dict[str, Any]:
        now = time.monotonic()
        hit = self._peek(path)
        if hit is not None:
            return hit
        request = urllib.request.Request(self._base + path)  # noqa: S310 - our API server
        if self._token_file:
            try:
                with open(self._token_file, encoding="utf-8") as fh:
                    request.add_header("Authorization", "Bearer " + fh.read().strip())
            except OSError:
                pass
        try:
            with urllib.request.urlopen(  # noqa: S310 - our API server
                request, timeout=self._timeout, context=self._ssl
            ) as response:
                body: dict[str, Any] = json.load(response)
        except urllib.error.HTTPError as exc:
            # The error holds the open response: close it, or every 404 leaks a socket.
            exc.close()
            if exc.code == 404:
                raise NotFound(f"Kubernetes {what} not found") from None
            if exc.code in (401, 403):
                raise PermissionDenied(
                    f"the provider's service account may not read {what} "
                    f"(HTTP {exc.code}); check the provider's RBAC",
                    code="KubernetesAccessDenied",
                ) from None
            raise Unavailable(
                f"Kubernetes API answered HTTP {exc.code} reading {what}",
                code="KubernetesUnavailable",
            ) from None
        except (OSError, ValueError) as exc:
            raise Unavailable(
                f"cannot read {what} from the Kubernetes API ({type(exc).__name__})",
                code="KubernetesUnavailable",
            ) from None
        with self._lock:
            if len(self._cache) >= _MAX_ENTRIES:
                # One entry per ServiceAccount ever seen: drop the expired ones.
                self._cache = {p: e for p, e in self._cache.items() if e[0] > now}
            self._cache[path] = (now + self._ttl, body)
        return body

    def service_account_annotations(self, namespace: str, name: str) -> dict[str, str]:
        body = self._get(_sa_path(namespace, name), f"ServiceAccount {namespace}/{name}")
        return _strings(body, "annotations")

    def peek_service_account_annotations(self, namespace: str, name: str) -> dict[str, str] | None:
        """The cached annotations, or None when a read is needed (never reads)."""
        body = self._peek(_sa_path(namespace, name))
        return None if body is None else _strings(body, "annotations")

    def node_labels(self, name: str) -> dict[str, str]:
        body = self._get(_node_path(name), f"Node {name}")
        return _strings(body, "labels")

    def peek_node_labels(self, name: str) -> dict[str, str] | None:
        body = self._peek(_node_path(name))
        return None if body is None else _strings(body, "labels")


# Cached reads kept before expired ones are dropped.
_MAX_ENTRIES = 1024


def _sa_path(namespace: str, name: str) -> str:
    return (
        f"/api/v1/namespaces/{urllib.parse.quote(namespace, safe='')}"
        f"/serviceaccounts/{urllib.parse.quote(name, safe='')}"
    )


def _node_path(name: str) -> str:
    return f"/api/v1/nodes/{urllib.parse.quote(name, safe='')}"


def _strings(body: dict[str, Any], field: str) -> dict[str, str]:
    values = body.get("metadata", {}).get(field) or {}
    return {str(k): str(v) for k, v in values.items()}
