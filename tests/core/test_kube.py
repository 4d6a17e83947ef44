"""The provider's Kubernetes API client without API access: it starts, and says what is missing.

The chart installs the provider without a service-account token or CA when no
RBAC is asked for, yet kubelet still sets KUBERNETES_SERVICE_HOST. The client
used to build its TLS context from the absent CA file at start, so the provider
exited before serving anything (found by the e2e suite).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from provider.errors import NotFound, PermissionDenied, ProviderError, Unavailable
from provider.kube import KubeClient


def test_no_ca_file_is_no_crash_at_start_and_a_named_error_at_use(tmp_path: Path) -> None:
    missing = tmp_path / "serviceaccount" / "ca.crt"
    client = KubeClient.from_environment(
        "",
        {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"},
        token_file=str(tmp_path / "serviceaccount" / "token"),
        ca_file=str(missing),
    )
    assert client is not None  # built without touching the file
    with pytest.raises(PermissionDenied) as caught:
        # The CA is read before any connection: nothing is sent anywhere.
        client.read("/api/v1/namespaces/default/serviceaccounts/app", "ServiceAccount default/app")
    assert caught.value.code == "KubernetesAccessDenied"
    assert str(missing) in str(caught.value) and "ServiceAccount default/app" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "body", "expected", "code"),
    [
        (404, b"{}", NotFound, "ObjectNotFound"),
        (401, b"{}", PermissionDenied, "KubernetesAccessDenied"),
        (403, b"{}", PermissionDenied, "KubernetesAccessDenied"),
        (429, b"{}", Unavailable, "KubernetesUnavailable"),
        (500, b"{}", Unavailable, "KubernetesUnavailable"),
        (200, b"[1, 2]", Unavailable, "KubernetesUnavailable"),  # not a Kubernetes object
        (200, b"{cut", Unavailable, "KubernetesUnavailable"),
    ],
)
def test_api_answers_are_translated_once(
    status: int, body: bytes, expected: type[ProviderError], code: str
) -> None:
    """kube.translate maps each answer of a real HTTP server; never the catch-all."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        host, port = server.server_address[:2]
        client = KubeClient(base_url=f"http://{host}:{port}")
        with pytest.raises(ProviderError) as caught:
            client.read("/api/v1/nodes/n1", "Node n1")
    finally:
        server.shutdown()
        server.server_close()
    assert type(caught.value) is expected and caught.value.code == code
    assert "Node n1" in caught.value.message


def test_no_server_is_unavailable() -> None:
    client = KubeClient(base_url="http://127.0.0.1:9")  # the discard port: nothing listens
    with pytest.raises(Unavailable) as caught:
        client.read("/api/v1/nodes/n1", "Node n1")
    assert caught.value.code == "KubernetesUnavailable"
