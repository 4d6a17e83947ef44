"""``metadataFile``: a KV v2 secret's version and metadata as a JSON file, from the same read."""

from __future__ import annotations

import json
from collections.abc import Callable

import grpc
import pytest

from tests.support.running import RunningProvider, files_of, versions_of
from tests.vault.conftest import KNOWN_SECRET, Vault

pytestmark = pytest.mark.vault

Attrs = Callable[..., dict[str, str]]


def spc(objects: str) -> dict[str, str]:
    return {"roleName": "app", "objects": objects}


def test_metadata_file_holds_the_kv2_version_and_metadata(
    provider: RunningProvider, attrs: Attrs, vault: Vault
) -> None:
    objects = ("- objectName: value\n  secretPath: secret/data/versioned\n  secretKey: value\n"
               "  filePermission: 0400\n  metadataFile: meta/versioned.json")
    response = provider.mount(attrs(spc(objects)))
    files = files_of(response)
    assert files["value"] == (0o400, b"two")
    mode, body = files["meta/versioned.json"]
    assert mode == 0o400
    meta = json.loads(body)
    expected = vault.root().secrets.kv.v2.read_secret_version(
        path="versioned", mount_point="secret", raise_on_deleted_version=True
    )["data"]["metadata"]
    assert meta == expected and meta["version"] == 2 and meta["destroyed"] is False
    assert set(meta) >= {"version", "created_time", "deletion_time", "destroyed",
                         "custom_metadata"}
    assert versions_of(response) == {"value": "2"}  # the derived file adds no version


def test_a_pinned_version_has_its_own_metadata(provider: RunningProvider, attrs: Attrs) -> None:
    objects = ("- objectName: value\n  secretPath: secret/data/versioned?version=1\n"
               "  secretKey: value\n  metadataFile: meta.json")
    files = files_of(provider.mount(attrs(spc(objects))))
    assert files["value"][1] == b"one"
    assert json.loads(files["meta.json"][1])["version"] == 1


def test_whole_response_and_metadata_file_from_one_read(provider: RunningProvider,
                                                         attrs: Attrs) -> None:
    objects = ("- objectName: all\n  secretPath: secret/data/app\n  metadataFile: all.meta\n"
               "- objectName: pw\n  secretPath: secret/data/app\n  secretKey: password")
    files = files_of(provider.mount(attrs(spc(objects))))
    whole = json.loads(files["all"][1])
    assert json.loads(files["all.meta"][1]) == whole["data"]["metadata"]
    assert files["pw"][1] == KNOWN_SECRET.encode()


def test_not_a_kv2_answer_is_an_error_naming_the_parameter(provider: RunningProvider,
                                                            attrs: Attrs) -> None:
    objects = ("- objectName: token\n  secretPath: kv1/app\n  secretKey: token\n"
               "  metadataFile: token.meta")
    err = provider.mount_error(attrs(spc(objects)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert err.details().startswith("InvalidParameters: object 'token'"), err.details()
    assert "'metadataFile'" in err.details() and "not a KV v2 read" in err.details()


@pytest.mark.parametrize(
    ("objects", "expected"),
    [
        pytest.param("- {objectName: a, secretPath: secret/data/app, metadataFile: b}\n"
                     "- {objectName: b, secretPath: secret/data/other}", "also written by",
                     id="collides-with-an-object"),
        pytest.param("- {objectName: a, secretPath: secret/data/app, metadataFile: ../m}",
                     "'../m'", id="outside-the-volume"),
        pytest.param("- {objectName: a, metadataFile: m, select: {path: secret/data/}}",
                     "'metadataFile' does not go with 'select'", id="with-select"),
    ],
)
def test_bad_metadata_file_is_invalid_parameters(
    provider: RunningProvider, attrs: Attrs, objects: str, expected: str
) -> None:
    err = provider.mount_error(attrs(spc(objects)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert expected in err.details(), err.details()
