"""Objects from several Key Vaults in one class (a per-object `keyvaultName`, Azure #1088).

Two Key Vault emulators behind one Azure AD stand-in (both real HTTPS servers).
The vault URL template maps a vault name to its server as DNS would map it to a
host: here the name is the emulator's port (`https://127.0.0.1:{vault}/`; a
port number is a valid vault name).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from tests.azure.conftest import wi_attrs
from tests.support.azure_standin import (
    AUDIENCE,
    WI_CLIENT,
    AzureWorld,
    KeyVaultEmulator,
    azure_world,
    serve_https,
)
from tests.support.running import RunningProvider, files_of, settings_for, versions_of
from tests.support.tokens import pod_token

pytestmark = pytest.mark.azure


Vaults = tuple[AzureWorld, KeyVaultEmulator, RunningProvider]


def _port(url: str) -> str:
    return url.rsplit(":", 1)[1].rstrip("/")


@pytest.fixture(scope="module")
def two_vaults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vaults]:
    with azure_world() as world:
        other = KeyVaultEmulator(world.tokens)
        with serve_https(other, world.pki) as other_url:
            other.url = other_url
            world.tokens.federated[WI_CLIENT] = pod_token(AUDIENCE)
            world.vault.set_secret("db", "from-the-first")
            other.set_secret("db", "from-the-second")
            other.set_secret("api", "second-api")
            settings = replace(world.settings(), keyvault_endpoint="https://127.0.0.1:{vault}/")
            sockets = Path(tmp_path_factory.mktemp("azvaults"))
            with RunningProvider(settings_for(sockets, {"azure": settings})) as provider:
                yield world, other, provider


def test_objects_from_two_vaults_in_one_mount(
    two_vaults: Vaults,
) -> None:
    world, other, provider = two_vaults
    first, second = _port(world.vault.url), _port(other.url)
    response = provider.mount(
        wi_attrs(
            "objectName: db\nobjectType: secret\nobjectAlias: db-1",
            f"objectName: db\nobjectType: secret\nobjectAlias: db-2\nkeyvaultName: '{second}'",
            f"objectName: api\nobjectType: secret\nkeyvaultName: '{second}'",
            keyvaultName=first,
        )
    )
    assert {p: c for p, (_, c) in files_of(response).items()} == {
        "db-1": b"from-the-first",
        "db-2": b"from-the-second",
        "api": b"second-api",
    }
    # The same object name in two vaults: two distinct object versions.
    assert set(versions_of(response)) == {
        "secret/db",
        f"secret/{second}/db",
        f"secret/{second}/api",
    }
    # Each vault saw only its own reads.
    assert all("/api" not in path for _, path, _ in world.vault.requests)
    assert any(path.startswith("/secrets/api") for _, path, _ in other.requests)


def test_a_denial_in_one_vault_fails_the_whole_mount(
    two_vaults: Vaults,
) -> None:
    world, other, provider = two_vaults
    other.allowed = {"nobody"}
    try:
        error = provider.mount_error(
            wi_attrs(
                "objectName: db\nobjectType: secret",
                f"objectName: api\nobjectType: secret\nkeyvaultName: '{_port(other.url)}'",
                keyvaultName=_port(world.vault.url),
            )
        )
    finally:
        other.allowed = None
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert f"in vault '{_port(other.url)}'" in (error.details() or "")


def test_a_bad_vault_name_is_named_before_any_call(
    two_vaults: Vaults,
) -> None:
    _world, _other, provider = two_vaults
    error = provider.mount_error(
        wi_attrs("objectName: db\nobjectType: secret\nkeyvaultName: 'no/such'")
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "parameter 'keyvaultName'" in (error.details() or "")
