"""`select` on a secret object: every enabled secret of the vault by name prefix and tags.

Against the Key Vault stand-in, with small list pages (nextLink followed), and
the requests counted by the stand-in itself: one listing (its pages) and one
GET per match, nothing read when the bound is broken.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml

from tests.azure.conftest import wi_attrs
from tests.support.azure_standin import AUDIENCE, WI_CLIENT, AzureWorld, azure_world
from tests.support.running import RunningProvider, files_of, settings_for, versions_of
from tests.support.tokens import pod_token

pytestmark = pytest.mark.azure

APP = ("app-db", "app-api", "app-cache", "app-queue", "app-old")


@pytest.fixture(scope="module")
def world() -> Iterator[AzureWorld]:
    with azure_world() as world:
        world.tokens.federated[WI_CLIENT] = pod_token(AUDIENCE)
        world.vault.page_size = 2  # five app- secrets and more: several pages
        for name in APP:
            team = "pay" if name in ("app-db", "app-api") else "ops"
            world.vault.set_secret(name, f"value-of-{name}", tags={"team": team, "env": "prod"})
        world.vault.set_secret("app-old", "disabled-now", enabled=False)  # newest: disabled
        world.vault.set_secret("other-db", "not-selected", tags={"team": "pay"})
        yield world


@pytest.fixture(scope="module")
def provider(world: AzureWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
    RunningProvider
]:
    sockets = Path(tmp_path_factory.mktemp("azselect"))
    with RunningProvider(settings_for(sockets, {"azure": world.settings()})) as running:
        yield running


@pytest.fixture(autouse=True)
def _open(world: AzureWorld) -> Iterator[None]:
    yield
    world.vault.list_denied.clear()


def _select(path: str, *extra: str) -> str:
    return "\n".join(("objectType: secret", "select:", f"  path: {path}", *extra))


def _counts(world: AzureWorld, since: int) -> tuple[int, int]:
    """(list pages, secret GETs) the vault answered since request ``since``."""
    seen = world.vault.requests[since:]
    pages = sum(1 for m, p, s in seen if m == "GET" and p == "/secrets" and s == 200)
    gets = sum(1 for m, p, s in seen if m == "GET" and p.startswith("/secrets/") and s == 200)
    return pages, gets


def test_every_enabled_secret_under_the_prefix_one_file_each(
    provider: RunningProvider, world: AzureWorld
) -> None:
    since = len(world.vault.requests)
    answer = provider.mount(wi_attrs(_select("app-", "filePermission: \"0400\"")))
    files = files_of(answer)
    assert files == {
        name.removeprefix("app-"): (0o400, f"value-of-{name}".encode())
        for name in ("app-db", "app-api", "app-cache", "app-queue")
    }
    versions = versions_of(answer)
    assert set(versions) == {f"secret/{n}" for n in ("app-db", "app-api", "app-cache", "app-queue")}
    assert len(set(versions.values())) == 4  # each match its own version
    # Every page of the listing (nextLink followed); then one GET per match,
    # none for the disabled one nor for other-db.
    assert _counts(world, since) == (world.vault.list_pages(), 4)


def test_tags_all_match_and_alias_is_the_directory(
    provider: RunningProvider, world: AzureWorld
) -> None:
    since = len(world.vault.requests)
    item = "objectAlias: pay\n" + _select("app-", "  tags:", "    team: pay", "    env: prod")
    files = files_of(provider.mount(wi_attrs(item)))
    assert files == {"pay/db": (0o644, b"value-of-app-db"), "pay/api": (0o644, b"value-of-app-api")}
    assert _counts(world, since) == (world.vault.list_pages(), 2)


def test_over_the_bound_fails_before_any_value_is_read(
    provider: RunningProvider, world: AzureWorld
) -> None:
    since = len(world.vault.requests)
    error = provider.mount_error(wi_attrs(_select("app-", "  max: 3")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "SelectionTooLarge" in error.details() and "max=3" in error.details()
    pages, gets = _counts(world, since)
    assert gets == 0 and pages >= 2  # listed until one past the bound, read nothing


def test_zero_matches_is_not_found(provider: RunningProvider, world: AzureWorld) -> None:
    since = len(world.vault.requests)
    error = provider.mount_error(wi_attrs(_select("nothing-")))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "'nothing-'" in error.details()
    assert _counts(world, since) == (world.vault.list_pages(), 0)


def test_list_denied_names_the_permission(provider: RunningProvider, world: AzureWorld) -> None:
    world.vault.list_denied.add(WI_CLIENT)
    since = len(world.vault.requests)
    error = provider.mount_error(wi_attrs(_select("app-")))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    details = error.details()
    assert "ListSecrets" in details and "secrets/list" in details
    assert "Microsoft.KeyVault/vaults/secrets/readMetadata/action" in details
    assert _counts(world, since) == (0, 0)
    # A named secret is still readable: only the listing needs the permission.
    named = provider.mount(wi_attrs("objectName: app-db\nobjectType: secret"))
    assert files_of(named)["app-db"][1] == b"value-of-app-db"


def test_a_match_colliding_with_a_named_object_fails(provider: RunningProvider) -> None:
    error = provider.mount_error(
        wi_attrs(_select("app-"), "objectName: other-db\nobjectType: secret\nobjectAlias: db")
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'db'" in error.details() and "also written" in error.details()


@pytest.mark.parametrize(
    ("item", "words"),
    [
        (_select("app-", "  recursive: true"), "'recursive' does not apply"),
        ("objectType: key\nselect:\n  path: app-", "only for objectType secret"),
        (_select("app-") + "\nobjectName: app-db", "'objectName' does not go with 'select'"),
        (_select("app-") + "\nobjectVersionHistory: 2", "'objectVersionHistory' does not go"),
        (_select("app-", "  max: 0"), "'max' must be between 1 and"),
        ("objectType: secret\nselect: app-", "must be a mapping with 'path'"),
        (_select("app-", "  tags: [a]"), "'tags' must be a mapping"),
    ],
)
def test_bad_select_is_refused_before_any_request(
    provider: RunningProvider, world: AzureWorld, item: str, words: str
) -> None:
    since = len(world.vault.requests)
    error = provider.mount_error(wi_attrs(item))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in error.details() and "select" in error.details()
    assert world.vault.requests[since:] == []


def test_rotation_sees_an_added_secret(provider: RunningProvider, world: AzureWorld) -> None:
    params = {"refreshInterval": "1s"}
    item = _select("rot-")
    world.vault.set_secret("rot-a", "a-1")
    first = provider.mount(wi_attrs(item, **params))
    assert files_of(first) == {"a": (0o644, b"a-1")}
    since = len(world.vault.requests)
    world.vault.set_secret("rot-b", "b-1")
    cached = provider.mount(wi_attrs(item, **params), current_versions=versions_of(first))
    assert files_of(cached) == files_of(first) and _counts(world, since) == (0, 0)
    time.sleep(1.1)
    later = provider.mount(wi_attrs(item, **params), current_versions=versions_of(first))
    assert files_of(later) == {"a": (0o644, b"a-1"), "b": (0o644, b"b-1")}
    assert set(versions_of(later)) == {"secret/rot-a", "secret/rot-b"}
    assert versions_of(later)["secret/rot-a"] == versions_of(first)["secret/rot-a"]


def test_lint_catches_a_bad_select_offline(tmp_path: Path) -> None:
    """`polysecret lint` reports what a mount would refuse, with no network (closed endpoints)."""
    objects = "array:\n  - |\n" + "".join(
        f"    {line}\n" for line in _select("app-", "  recursive: true", "  max: 0").splitlines()
    )
    spc = {
        "apiVersion": "secrets-store.csi.x-k8s.io/v1",
        "kind": "SecretProviderClass",
        "metadata": {"name": "sel", "namespace": "team"},
        "spec": {"provider": "azure", "parameters": {
            "keyvaultName": "kv1", "tenantID": "t", "clientID": "c", "objects": objects,
        }},
    }
    path = tmp_path / "spc.yaml"
    path.write_text(yaml.safe_dump(spc))
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "provider", "lint", str(path)], capture_output=True, text=True,
        cwd=root, timeout=120, check=False, env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "'recursive' does not apply" in done.stdout and "'max' must be between" in done.stdout


@pytest.mark.parametrize(
    ("page", "words"),
    [
        ({"value": [{"id": "https://v/secrets/app-x", "attributes": {"enabled": True}}],
          "nextLink": "https://elsewhere.example/secrets?$skiptoken=1"}, "to another host"),
        ({"value": [{"id": "https://v/secrets/app-x"}], "nextLink": None},
         "a list item without a name or attributes"),
        ({"value": [{"id": "https://v/secrets/app-x", "attributes": {"enabled": True},
                     "tags": ["team"]}], "nextLink": None}, "tags that are not an object"),
        ({"nextLink": None}, "not what the API promises"),
    ],
)
def test_an_unusable_list_answer_is_retried_then_unavailable(
    provider: RunningProvider, world: AzureWorld, page: dict[str, object], words: str
) -> None:
    provider.mount(wi_attrs("objectName: app-db\nobjectType: secret"))  # warm: token, challenge
    world.vault.fail_next(200, body=page, times=50)
    try:
        error = provider.mount_error(wi_attrs(_select("app-")))
    finally:
        world.vault.reset_faults()
    assert error.code() == grpc.StatusCode.UNAVAILABLE, error.details()
    assert words in error.details() and "select 'app-'" in error.details()
