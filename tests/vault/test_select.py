"""``select`` on a Vault path: every secret under it, one file each, bounded, through the caches.

Against a real OpenBao with a file audit device: request counts are what the
server saw (its audit log), not what the provider says it sent.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from provider.backends.vault import VaultSettings
from tests.support.openbao import (
    OpenBao,
    TokenSigner,
    add_policy,
    add_role,
    enable_jwt_auth,
    openbao_server,
)
from tests.support.running import RunningProvider, files_of, pod_attributes, versions_of
from tests.vault.conftest import ProviderFactory

pytestmark = pytest.mark.vault

Attrs = Callable[..., dict[str, str]]


class Audited:
    """An OpenBao whose audit log counts the requests it served."""

    def __init__(self, server: OpenBao, signer: TokenSigner) -> None:
        self.server = server
        self.signer = signer
        assert server.audit_log is not None
        self.log: Path = server.audit_log
        self.mark = 0

    def start(self) -> None:
        """Count from here on."""
        self.mark = self.log.stat().st_size

    def served(self) -> Counter[tuple[str, str]]:
        """(operation, path) of every request answered since ``start``."""
        seen: Counter[tuple[str, str]] = Counter()
        with self.log.open("rb") as fh:
            fh.seek(self.mark)
            for line in fh:
                entry = json.loads(line)
                request = entry.get("request") or {}
                if entry.get("type") == "response" and not request.get("path", "").startswith(
                    ("auth/", "sys/")
                ):
                    seen[(request.get("operation", ""), request["path"])] += 1
        return seen

    def put(self, path: str, value: dict[str, Any]) -> None:
        self.server.client().secrets.kv.v2.create_or_update_secret(
            path=path, mount_point="secret", secret=value
        )


@pytest.fixture(scope="module")
def bao() -> Iterator[Audited]:
    signer = TokenSigner()
    with openbao_server(audit=True) as server:
        root = server.client()
        enable_jwt_auth(root, signer)
        audited = Audited(server, signer)
        audited.put("sel/a", {"value": "alpha", "n": 1})
        audited.put("sel/b", {"value": "beta"})
        audited.put("sel/sub/c", {"value": "gamma"})
        root.sys.enable_secrets_engine("kv", path="kv1", options={"version": "1"})
        root.write_data("kv1/sel/x", data={"value": "ex"})
        add_policy(root, "lister", {
            "secret/metadata/*": ["list"], "secret/data/*": ["read"], "kv1/*": ["read", "list"],
        })
        add_policy(root, "reader", {"secret/data/*": ["read"]})
        add_role(root, "app", ["app"], ["lister"])
        add_role(root, "reader", ["reader"], ["reader"])
        yield audited


@pytest.fixture
def provider(make_provider: ProviderFactory, bao: Audited) -> RunningProvider:
    return make_provider(VaultSettings(address=bao.server.address))


@pytest.fixture
def attrs(bao: Audited) -> Attrs:
    def build(objects: str, *, sa: str = "app", **params: str) -> dict[str, str]:
        jwt = bao.signer.token(sa, "default", audience="vault")
        return pod_attributes({"roleName": sa, "objects": objects, **params},
                              namespace="default", service_account=sa, tokens={"vault": jwt})

    return build


def test_select_mounts_each_secret_under_the_path(
    provider: RunningProvider, attrs: Attrs, bao: Audited
) -> None:
    objects = ("- objectName: app\n  secretKey: value\n  select: {path: secret/data/sel/}\n"
               "- objectName: whole\n  select: {path: secret/data/sel/}")
    bao.start()
    response = provider.mount(attrs(objects))
    files = files_of(response)
    assert {p: c for p, (_m, c) in files.items() if p.startswith("app/")} == {
        "app/a": b"alpha", "app/b": b"beta",  # the folder sub/ is not descended into
    }
    whole = json.loads(files["whole/a"][1])  # the whole response, as vault-csi-provider writes it
    assert whole["data"]["data"] == {"value": "alpha", "n": 1}
    assert sorted(files) == ["app/a", "app/b", "whole/a", "whole/b"]
    versions = versions_of(response)
    assert versions["app/a"] == versions["app/b"] == "1"  # each match's own KV v2 version
    # One LIST (both objects list the same path), one read per secret.
    assert bao.served() == {("list", "secret/metadata/sel/"): 1, ("read", "secret/data/sel/a"): 1,
                            ("read", "secret/data/sel/b"): 1}


def test_recursive_descends_into_folders(provider: RunningProvider, attrs: Attrs,
                                         bao: Audited) -> None:
    objects = ("- objectName: app\n  secretKey: value\n"
               "  select: {path: secret/data/sel, recursive: true}")
    bao.start()
    files = files_of(provider.mount(attrs(objects)))
    assert files == {"app/a": (0o644, b"alpha"), "app/b": (0o644, b"beta"),
                     "app/sub/c": (0o644, b"gamma")}
    served = bao.served()
    assert served[("list", "secret/metadata/sel/")] == 1
    assert served[("list", "secret/metadata/sel/sub/")] == 1


def test_kv1_is_listed_at_the_path(provider: RunningProvider, attrs: Attrs,
                                   bao: Audited) -> None:
    objects = "- objectName: app\n  secretKey: value\n  select: {path: kv1/sel/}"
    bao.start()
    files = files_of(provider.mount(attrs(objects)))
    assert files == {"app/x": (0o644, b"ex")}
    assert bao.served() == {("list", "kv1/sel/"): 1, ("read", "kv1/sel/x"): 1}


def test_over_the_bound_fails_before_any_value_is_read(
    provider: RunningProvider, attrs: Attrs, bao: Audited
) -> None:
    objects = "- objectName: app\n  select: {path: secret/data/sel/, max: 1}"
    bao.start()
    err = provider.mount_error(attrs(objects))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert err.details().startswith("SelectionTooLarge: object 'app'"), err.details()
    assert "max=1" in err.details()
    assert bao.served() == {("list", "secret/metadata/sel/"): 1}  # nothing partial


def test_zero_matches_is_not_found(provider: RunningProvider, attrs: Attrs,
                                   bao: Audited) -> None:
    err = provider.mount_error(attrs("- objectName: app\n  select: {path: secret/data/none/}"))
    assert err.code() == grpc.StatusCode.NOT_FOUND, err.details()
    assert "matched nothing" in err.details() and "'app'" in err.details()


def test_listing_denied_names_the_list_capability(
    provider: RunningProvider, attrs: Attrs, bao: Audited
) -> None:
    objects = "- objectName: app\n  select: {path: secret/data/sel/}"
    # The reader may read every secret but not list them.
    assert files_of(provider.mount(attrs(
        "- {objectName: a, secretPath: secret/data/sel/a, secretKey: value}", sa="reader")))
    bao.start()
    err = provider.mount_error(attrs(objects, sa="reader"))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED, err.details()
    assert err.details().startswith("AccessDenied: object 'app'"), err.details()
    assert "'list' capability on 'secret/metadata/sel/'" in err.details()
    assert not [k for k in bao.served() if k[0] == "read"]


def test_a_match_colliding_with_another_object_fails(
    provider: RunningProvider, attrs: Attrs, bao: Audited
) -> None:
    objects = ("- objectName: app\n  select: {path: secret/data/sel/}\n"
               "- {objectName: app/a, secretPath: secret/data/sel/b}")
    err = provider.mount_error(attrs(objects))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert "'app/a'" in err.details() and "also written by" in err.details()


def test_rotation_sees_an_added_secret_and_the_listing_is_cached(
    provider: RunningProvider, attrs: Attrs, bao: Audited
) -> None:
    objects = "- objectName: rot\n  secretKey: value\n  select: {path: secret/data/rot/}"
    bao.put("rot/one", {"value": "1"})
    first = provider.mount(attrs(objects, refreshInterval="1h"))
    assert sorted(files_of(first)) == ["rot/one"]
    bao.put("rot/two", {"value": "2"})
    bao.start()
    cached = provider.mount(attrs(objects, refreshInterval="1h"))
    assert sorted(files_of(cached)) == ["rot/one"]  # within the window: the cached listing
    assert bao.served() == {}
    fresh = provider.mount(attrs(objects, refreshInterval="0"))
    assert files_of(fresh) == {"rot/one": (0o644, b"1"), "rot/two": (0o644, b"2")}
    assert set(versions_of(fresh)) == {"rot/one", "rot/two"}  # rotation sees the new one
    assert bao.served()[("list", "secret/metadata/rot/")] == 1


@pytest.mark.parametrize(
    ("select", "expected"),
    [
        pytest.param("{path: secret/data/sel/, tags: {a: b}}", "'tags' does not apply",
                     id="tags"),
        pytest.param("{path: secret/data/sel/, max: 0}", "'max' must be between", id="max-0"),
        pytest.param("{path: 'secret/data/sel?version=1'}", "without a query", id="query"),
        pytest.param("{recursive: true}", "'path' is required", id="no-path"),
        pytest.param("secret/data/sel/", "must be a mapping", id="not-a-mapping"),
    ],
)
def test_bad_select_is_invalid_before_any_request(
    provider: RunningProvider, attrs: Attrs, bao: Audited, select: str, expected: str
) -> None:
    bao.start()
    err = provider.mount_error(attrs(f"- objectName: app\n  select: {select}"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert expected in err.details() and "'select'" in err.details(), err.details()
    assert bao.served() == {}


def test_select_refuses_a_secret_path_beside_it(provider: RunningProvider, attrs: Attrs) -> None:
    objects = "- objectName: app\n  secretPath: secret/data/a\n  select: {path: secret/data/sel/}"
    err = provider.mount_error(attrs(objects))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'secretPath' does not go with 'select'" in err.details()
