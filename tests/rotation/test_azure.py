"""The rotation cache against the Azure Key Vault stand-in: GETs counted in its request log."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest

from tests.rotation.conftest import ProviderFactory
from tests.support.azure_standin import AUDIENCE, TENANT, WI_CLIENT, AzureWorld, azure_world
from tests.support.running import RunningProvider, files_of, pod_attributes, versions_of
from tests.support.tokens import pod_token

pytestmark = pytest.mark.azure

OBJECTS = (
    "array:\n"
    "  - |\n    objectName: rot-one\n    objectType: secret\n"
    "  - |\n    objectName: rot-two\n    objectType: secret\n"
)


@pytest.fixture(scope="module")
def world() -> Iterator[AzureWorld]:
    with azure_world() as world:
        world.tokens.federated_subjects[WI_CLIENT] = {
            f"system:serviceaccount:default:{sa}" for sa in ("app", "other")
        }
        world.vault.set_secret("rot-one", "one-1")
        world.vault.set_secret("rot-two", "two-1")
        yield world


def _provider(make: ProviderFactory, world: AzureWorld) -> RunningProvider:
    return make({"azure": world.settings()})


def _attrs(params: dict[str, str], *, sa: str = "app", pod: str = "app-0") -> dict[str, str]:
    return pod_attributes(
        {"keyvaultName": "rotvault", "tenantID": TENANT, "clientID": WI_CLIENT,
         "objects": OBJECTS, **params},
        service_account=sa, pod=pod, tokens={AUDIENCE: pod_token(AUDIENCE, "default", sa)},
    )


def _gets(world: AzureWorld) -> int:
    return sum(1 for m, p, status in world.vault.requests
               if m == "GET" and p.startswith("/secrets/rot-") and status == 200)


def test_pods_of_two_identities_read_each_object_once_per_window(
    make_provider: ProviderFactory, world: AzureWorld
) -> None:
    provider = _provider(make_provider, world)
    before = _gets(world)
    params = {"refreshInterval": "1m"}
    answers = [provider.mount(_attrs(params, pod=f"app-{i}")) for i in range(10)]
    answers += [provider.mount(_attrs(params, sa="other", pod=f"o-{i}")) for i in range(5)]
    assert {files_of(a)["rot-one"][1] for a in answers} == {b"one-1"}
    assert _gets(world) - before == 4  # 2 objects x 2 identities


def test_a_new_version_shows_after_the_window(
    make_provider: ProviderFactory, world: AzureWorld
) -> None:
    provider = _provider(make_provider, world)
    params = {"refreshInterval": "1s"}
    first = provider.mount(_attrs(params))
    world.vault.set_secret("rot-two", "two-2")
    poll = provider.mount(_attrs(params, pod="app-1"), current_versions=versions_of(first))
    assert files_of(poll) == files_of(first) and versions_of(poll) == versions_of(first)
    time.sleep(1.1)
    later = provider.mount(_attrs(params, pod="app-2"), current_versions=versions_of(first))
    assert files_of(later)["rot-two"][1] == b"two-2"
    assert versions_of(later)["secret/rot-one"] == versions_of(first)["secret/rot-one"]
    assert versions_of(later)["secret/rot-two"] != versions_of(first)["secret/rot-two"]


def test_an_unfederated_service_account_gets_nothing_cached(
    make_provider: ProviderFactory, world: AzureWorld
) -> None:
    provider = _provider(make_provider, world)
    provider.mount(_attrs({"refreshInterval": "1m"}))
    before = _gets(world)
    err = provider.mount_error(_attrs({"refreshInterval": "1m"}, sa="intruder"))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "one-" not in err.details()
    assert _gets(world) == before
