"""Each way to mount as the pod, credential reuse per identity, throttling, and no leaks."""

from __future__ import annotations

import logging
import time
from typing import Any

import grpc
import pytest

from tests.azure.conftest import POD_TOKEN, SP_SECRET, Seeded, objects, wi_attrs
from tests.support.azure_standin import MI_CLIENT, SP_CLIENT, TENANT, WI_CLIENT
from tests.support.running import RunningProvider, files_of, pod_attributes

pytestmark = pytest.mark.azure

PLAIN = objects("objectName: plain\nobjectType: secret")


def _backend(provider: RunningProvider) -> Any:
    return provider.run(provider.app.registry.get("azure"))


def sp_attrs(service_account: str = "sp-user") -> dict[str, str]:
    return pod_attributes(
        {"keyvaultName": "polyvault", "tenantID": TENANT, "objects": PLAIN},
        service_account=service_account,
    )


@pytest.mark.parametrize(
    "secrets",
    [
        {"clientid": SP_CLIENT, "clientsecret": SP_SECRET},
        {"ClientID": SP_CLIENT, "ClientSecret": SP_SECRET},
    ],
    ids=["lowercase-keys", "mixed-case-keys"],
)
def test_service_principal(provider: RunningProvider, secrets: dict[str, str]) -> None:
    response = provider.mount(sp_attrs(), secrets=secrets)
    assert files_of(response) == {"plain": (0o644, b"three")}


@pytest.mark.parametrize(
    ("secrets", "words"),
    [
        (
            {"clientid": SP_CLIENT, "clientsecret": "not-the-secret"},
            ["AuthFailed", "AADSTS7000215"],
        ),
        # The core redacts every nodePublishSecretRef value, the client id too.
        (
            {"clientid": "no-such-app", "clientsecret": SP_SECRET},
            ["AuthFailed", "service principal"],
        ),
    ],
    ids=["wrong-secret", "unknown-client"],
)
def test_service_principal_denied(
    provider: RunningProvider, secrets: dict[str, str], words: list[str]
) -> None:
    err = provider.mount_error(sp_attrs("sp-denied"), secrets=secrets)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    for word in words:
        assert word in err.details()
    assert "not-the-secret" not in err.details() and SP_SECRET not in err.details()


def test_service_principal_needs_both_keys_and_never_the_tokens_key(
    provider: RunningProvider,
) -> None:
    tokens_only = {"csi.storage.k8s.io/serviceAccount.tokens": '{"x": {"token": "t"}}'}
    for secrets in ({"clientid": SP_CLIENT}, tokens_only, {}):
        err = provider.mount_error(sp_attrs(), secrets=secrets)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "clientid" in err.details() and "clientsecret" in err.details()


@pytest.mark.parametrize(
    ("params", "ok"),
    [
        ({"useVMManagedIdentity": "true", "userAssignedIdentityID": MI_CLIENT}, True),
        ({"useVMManagedIdentity": "true"}, True),  # system-assigned
        ({"useVMManagedIdentity": "true", "userAssignedIdentityID": "not-on-this-vm"}, False),
        # The Azure provider's order: the mode flag wins over a workload identity client id.
        ({"useVMManagedIdentity": "true", "userAssignedIdentityID": MI_CLIENT,
          "clientID": WI_CLIENT, "tenantID": TENANT}, True),
    ],
    ids=["user-assigned", "system-assigned", "unknown-identity", "vm-flag-wins-over-clientID"],
)
def test_vm_managed_identity(
    provider: RunningProvider,
    seeded: Seeded,
    monkeypatch: pytest.MonkeyPatch,
    params: dict[str, str],
    ok: bool,
) -> None:
    # azure-identity's own variable for the IMDS host; the node's would be 169.254.169.254.
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", seeded.world.tokens.url)
    attrs = pod_attributes(
        {"keyvaultName": "polyvault", "objects": PLAIN, **params},
        service_account=f"mi-{ok}-{len(params)}",
    )
    if ok:
        assert files_of(provider.mount(attrs)) == {"plain": (0o644, b"three")}
        assert any("/metadata/identity/oauth2/token" in r for r in seeded.world.tokens.requests)
    else:
        err = provider.mount_error(attrs, timeout=30)
        assert err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.PERMISSION_DENIED)
        assert "VM managed identity" in err.details() and "not-on-this-vm" in err.details()


def test_credentials_are_reused_per_identity_and_never_shared(
    provider: RunningProvider, seeded: Seeded
) -> None:
    tokens = seeded.world.tokens
    backend = _backend(provider)
    attrs = wi_attrs("objectName: plain\nobjectType: secret", service_account="reuse")
    provider.mount(attrs)
    created, token_calls = len(backend.identities), len(tokens.requests)
    challenges = sum(1 for r in seeded.world.vault.requests if r[2] == 401)
    for _ in range(3):
        assert files_of(provider.mount(attrs)) == {"plain": (0o644, b"three")}
    # Same identity: no new credential, no token request, no new 401 challenge.
    assert len(backend.identities) == created
    assert len(tokens.requests) == token_calls
    assert sum(1 for r in seeded.world.vault.requests if r[2] == 401) == challenges
    # Another service account with a token that is not its own gets nothing from
    # the cache: refused before any credential is built.
    err = provider.mount_error(
        wi_attrs(
            "objectName: plain\nobjectType: secret",
            service_account="other",
            token="eyJbad.eyJbad.sig",
        )
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert len(backend.identities) == created


def test_fresh_identity_asks_azure_ad_once(provider: RunningProvider, seeded: Seeded) -> None:
    tokens = seeded.world.tokens
    before = len(tokens.requests)
    items = [f"objectName: {n}\nobjectType: secret" for n in ("plain", "b64", "hexed", "json")]
    provider.mount(wi_attrs(*items, service_account="fresh"))
    assert len(tokens.requests) - before == 1


def test_throttled_then_success_honours_retry_after(
    provider: RunningProvider, seeded: Seeded
) -> None:
    attrs = wi_attrs("objectName: plain\nobjectType: secret")
    provider.mount(attrs)  # warm: the fault must hit the GET, not the challenge
    seeded.world.vault.fail_next(429, {"Retry-After": "1"})
    before = len(seeded.world.vault.requests)
    started = time.monotonic()
    assert files_of(provider.mount(attrs)) == {"plain": (0o644, b"three")}
    assert time.monotonic() - started >= 1.0  # waited as told
    statuses = [r[2] for r in seeded.world.vault.requests[before:]]
    assert statuses == [429, 200]


def test_server_errors_retried_then_unavailable(provider: RunningProvider, seeded: Seeded) -> None:
    attrs = wi_attrs("objectName: plain\nobjectType: secret")
    provider.mount(attrs)
    seeded.world.vault.fail_next(503, times=2)
    assert files_of(provider.mount(attrs)) == {"plain": (0o644, b"three")}
    seeded.world.vault.fail_next(503, times=50)
    err = provider.mount_error(attrs)
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert "plain" in err.details() and "HTTP 503" in err.details()


def test_no_secret_or_token_in_logs_or_messages(
    provider: RunningProvider, seeded: Seeded, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    provider.mount(wi_attrs("objectName: plain\nobjectType: secret\nobjectAlias: leak-check"))
    errors = [
        provider.mount_error(
            sp_attrs("leaky"), secrets={"clientid": SP_CLIENT, "clientsecret": "wrong-" + SP_SECRET}
        ),
        provider.mount_error(
            wi_attrs(
                "objectName: plain\nobjectType: secret",
                service_account="leaky2",
                token=POD_TOKEN + "x",
            )
        ),
    ]
    text = "\n".join(r.getMessage() + " " + str(r.__dict__) for r in caplog.records)
    text += "\n".join(e.details() for e in errors)
    access_tokens = list(seeded.world.tokens.issued)
    assert access_tokens and caplog.records
    for needle in (SP_SECRET, POD_TOKEN, "three", *access_tokens):
        assert needle not in text, needle
