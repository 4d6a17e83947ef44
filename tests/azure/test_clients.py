"""The lean Key Vault pipeline (provider.backends.azure.clients): what a request still carries,
and what the left-out policies no longer do, as the Key Vault stand-in sees it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from tests.azure.conftest import Seeded, wi_attrs
from tests.support.azure_standin import AUDIENCE, WI_CLIENT, AzureWorld, azure_world
from tests.support.running import RunningProvider, files_of, settings_for
from tests.support.tokens import pod_token

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


@pytest.fixture(scope="module")
def checking(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[AzureWorld, RunningProvider]]:
    """A provider that checks the challenge's resource (the default), before a vault on 127.0.0.1
    whose challenge names vault.azure.net, as a misdirected endpoint would."""
    with azure_world() as world:
        world.tokens.federated[WI_CLIENT] = pod_token(AUDIENCE)
        world.vault.set_secret("plain", "v")
        settings = replace(world.settings(), verify_challenge_resource=True)
        sockets = Path(tmp_path_factory.mktemp("azchallenge"))
        with RunningProvider(settings_for(sockets, {"azure": settings})) as running:
            yield world, running


def test_a_challenge_for_another_domain_gets_no_token(
    checking: tuple[AzureWorld, RunningProvider],
) -> None:
    world, provider = checking
    error = provider.mount_error(wi_attrs("objectName: plain\nobjectType: secret"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert error.details().startswith("ProviderMisconfigured: ")
    assert "--azure-keyvault-endpoint" in error.details()
    # Only the unauthenticated request that drew the challenge reached the vault.
    assert [s for _, _, s in world.vault.requests] == [401]


def test_a_token_the_vault_refuses_is_auth_failed_and_the_challenge_is_learned_again(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A 401 to a request with a token (the vault no longer knows its issuer): one GET,
    AuthFailed; the vault's challenge is forgotten, so the next read asks without a token
    first, as the SDK's policy did."""
    with azure_world() as world:
        world.tokens.federated[WI_CLIENT] = pod_token(AUDIENCE)
        world.vault.set_secret("plain", "v")
        sockets = Path(tmp_path_factory.mktemp("az401"))
        with RunningProvider(settings_for(sockets, {"azure": world.settings()})) as provider:
            attrs = wi_attrs("objectName: plain\nobjectType: secret")
            assert files_of(provider.mount(attrs))["plain"][1] == b"v"
            assert [s for _, _, s in world.vault.requests] == [401, 200]
            world.tokens.issued.clear()  # the vault now refuses every token issued so far
            since = len(world.vault.requests)
            error = provider.mount_error(attrs)
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error.details()
            assert error.details().startswith("AuthFailed: ")
            assert "HTTP 401" in error.details() and "AKV10032" in error.details()
            assert [s for _, _, s in world.vault.requests[since:]] == [401]
            since = len(world.vault.requests)
            provider.mount_error(attrs)
            # No token first (the challenge), then the kept token, refused: it stands.
            assert [s for _, _, s in world.vault.requests[since:]] == [401, 401]
