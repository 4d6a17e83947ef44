"""The few Kubernetes API reads a backend may need, with a short cache.

Only two reads exist: a ServiceAccount's annotations (the IRSA role ARN) and a
Node's labels (the region). Both are small GETs, so this speaks plain HTTPS
with the provider pod's own service-account token instead of pulling in the
Kubernetes client library (tens of MiB). Results are cached for a short time
(one bounded cache, single flight: fifty pods of one service account starting
at once make one read): every rotation poll of every pod would otherwise read
the API server again.
The provider works without any API access when the request carries all it needs.
"""

from __future__ import annotations

import functools
import json
import os
import ssl
import threading
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING

from provider.cache import Cache
from provider.codes import ErrorCode
from provider.errors import NotFound, PermissionDenied, ProviderError, Unavailable, translating

if TYPE_CHECKING:
    from provider.backends.base import FetchContext

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
        self._timeout = timeout
        # One entry per ServiceAccount and Node read; bodies are a few KiB.
        self.reads: Cache[str, dict[str, object]] = Cache(
            "kube",
            max_entries=MAX_ENTRIES,
            max_bytes=MAX_BYTES,
            ttl=ttl,
            size_of=lambda body: len(json.dumps(body)),
        )
        # Built on the first read, not here: a provider the chart installs without
        # API access has no token and no CA mounted, yet kubelet still sets
        # KUBERNETES_SERVICE_HOST. It must start, and a mount that needs the API
        # then says what is missing (KubernetesAccessDenied), naming the file.
        self._ca_file = ca_file
        self._ssl: ssl.SSLContext | None = None
        self._ssl_lock = threading.Lock()

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

    def _context(self, what: str) -> ssl.SSLContext:
        with self._ssl_lock:
            if self._ssl is None:
                try:
                    self._ssl = ssl.create_default_context(cafile=self._ca_file)
                except (OSError, ssl.SSLError) as exc:
                    why = getattr(exc, "strerror", None) or type(exc).__name__
                    raise PermissionDenied(
                        f"the provider cannot read {what}: it has no usable Kubernetes API "
                        f"CA file {self._ca_file!r} ({why}); give the provider API access "
                        "(the chart's RBAC values) or set what the class needs without it "
                        "(roleArn)",
                        code=ErrorCode.KubernetesAccessDenied,
                    ) from None
            return self._ssl

    def read(self, path: str, what: str) -> dict[str, object]:
        """One GET of the API server (blocking; not cached: see :meth:`cached`).

        Its failures are mapped once, by :func:`translate` (this client is not
        a backend: its own translator runs inside the backend's ``ctx.call``).
        """
        with translating(translate, subject=what, operation="GET"):
            return self._get(path, what)

    def _get(self, path: str, what: str) -> dict[str, object]:
        # Here, not at import: urllib.request and its http.client and email
        # cost an idle provider ~1 MiB, and most classes never read the API.
        import urllib.error
        import urllib.request

        request = urllib.request.Request(self._base + path)  # noqa: S310 - our API server
        if self._token_file:
            try:
                with open(self._token_file, encoding="utf-8") as fh:
                    request.add_header("Authorization", "Bearer " + fh.read().strip())
            except OSError:
                pass
        context = self._context(what) if self._base.startswith("https:") else None
        try:
            with urllib.request.urlopen(  # noqa: S310 - our API server
                request, timeout=self._timeout, context=context
            ) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            # The error holds the open response: close it, or every 404 leaks a socket.
            exc.close()
            raise
        if not isinstance(body, dict):
            raise ValueError("not a Kubernetes object")  # translated: KubernetesUnavailable
        return body

    async def cached(
        self, ctx: FetchContext, path: str, what: str, operation: str
    ) -> dict[str, object]:
        return await ctx.shared(
            self.reads, path, functools.partial(self.read, path, what), operation=operation
        )

    async def service_account_annotations(
        self, ctx: FetchContext, namespace: str, name: str
    ) -> dict[str, str]:
        body = await self.cached(
            ctx, _sa_path(namespace, name), f"ServiceAccount {namespace}/{name}",
            "kube.GetServiceAccount",
        )
        return _strings(body, "annotations")

    async def node_labels(self, ctx: FetchContext, name: str) -> dict[str, str]:
        body = await self.cached(ctx, _node_path(name), f"Node {name}", "kube.GetNode")
        return _strings(body, "labels")


def translate(exc: BaseException, *, subject: str, operation: str) -> ProviderError:
    """The provider error for a failed API read of ``subject`` (a provider.errors.Translator)."""
    import urllib.error  # loaded by the read that failed (see KubeClient._get)

    if isinstance(exc, urllib.error.HTTPError):
        if exc.code == 404:
            return NotFound(f"Kubernetes {subject} not found")
        if exc.code in (401, 403):
            return PermissionDenied(
                f"the provider's service account may not read {subject} "
                f"(HTTP {exc.code}); check the provider's RBAC",
                code=ErrorCode.KubernetesAccessDenied,
            )
        return Unavailable(
            f"Kubernetes API answered HTTP {exc.code} reading {subject}",
            code=ErrorCode.KubernetesUnavailable,
        )
    if isinstance(exc, OSError | ValueError):
        return Unavailable(
            f"cannot read {subject} from the Kubernetes API ({type(exc).__name__})",
            code=ErrorCode.KubernetesUnavailable,
        )
    return ProviderError(f"{subject}: {operation}: unexpected error {type(exc).__name__}")


# Bounds of the read cache: one entry per ServiceAccount (or Node) in use.
MAX_ENTRIES = 1024
MAX_BYTES = 8 * 1024 * 1024


def _sa_path(namespace: str, name: str) -> str:
    return (
        f"/api/v1/namespaces/{urllib.parse.quote(namespace, safe='')}"
        f"/serviceaccounts/{urllib.parse.quote(name, safe='')}"
    )


def _node_path(name: str) -> str:
    return f"/api/v1/nodes/{urllib.parse.quote(name, safe='')}"


def _strings(body: dict[str, object], field: str) -> dict[str, str]:
    metadata = body.get("metadata")
    values = metadata.get(field) if isinstance(metadata, dict) else None
    return {str(k): str(v) for k, v in values.items()} if isinstance(values, dict) else {}
