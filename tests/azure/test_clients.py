"""The lean Key Vault pipeline (provider.backends.azure.clients): what a request still carries,
and what the left-out policies no longer do, as the Key Vault stand-in sees it."""

from __future__ import annotations

import grpc
import pytest

from tests.azure.conftest import Seeded, wi_attrs
from tests.support.running import RunningProvider, files_of

pytestmark = pytest.mark.azure


def test_each_request_carries_the_sdk_user_agent(provider: RunningProvider, seeded: Seeded) -> None:
    vault = seeded.world.vault
    since = len(vault.requests)
    provider.mount(wi_attrs("objectName: plain\nobjectType: secret",
                            "objectName: rsa-key\nobjectType: key"))
    agents = vault.user_agents[since:]
    assert agents and all(a.startswith("azsdk-python-keyvault-") for a in agents), agents
    assert any("keyvault-secrets/" in a for a in agents)
    assert any("keyvault-keys/" in a for a in agents)


def test_a_redirect_is_not_followed(provider: RunningProvider, seeded: Seeded) -> None:
    """Key Vault never redirects: a 3xx is an error, and nothing goes where it points."""
    vault = seeded.world.vault
    provider.mount(wi_attrs("objectName: plain\nobjectType: secret"))  # warm: token and challenge
    since = len(vault.requests)
    elsewhere = f"{vault.url}/secrets/b64"  # where a followed redirect would go
    vault.fail_next(307, headers={"Location": elsewhere}, body={"error": {"code": "Moved"}})
    error = provider.mount_error(wi_attrs("objectName: plain\nobjectType: secret"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "HTTP 307" in error.details()
    assert [p for _, p, _ in vault.requests[since:]] == ["/secrets/plain/"]


def test_a_transient_fault_is_retried_by_the_provider_only(
    provider: RunningProvider, seeded: Seeded
) -> None:
    """One 503, then the answer: two GETs, not the SDK's retries on top of ours."""
    vault = seeded.world.vault
    provider.mount(wi_attrs("objectName: plain\nobjectType: secret"))
    since = len(vault.requests)
    vault.fail_next(503, headers={"Retry-After": "0"})
    files = files_of(provider.mount(wi_attrs("objectName: plain\nobjectType: secret")))
    assert files["plain"][1] == b"three"
    assert [s for _, _, s in vault.requests[since:]] == [503, 200]
