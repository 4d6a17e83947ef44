"""The provider's Kubernetes API client without API access: it starts, and says what is missing.

The chart installs the provider without a service-account token or CA when no
RBAC is asked for, yet kubelet still sets KUBERNETES_SERVICE_HOST. The client
used to build its TLS context from the absent CA file at start, so the provider
exited before serving anything (found by the e2e suite).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from provider.errors import PermissionDenied
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
