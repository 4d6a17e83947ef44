"""keysAsFiles and templates with the AWS dialect, mounted for real (moto, Unix socket)."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from tests.aws.conftest import attrs
from tests.support.running import RunningProvider, files_of, versions_of

pytestmark = pytest.mark.aws

DB = {"host": "db.internal", "username": "app", "password": "pw-7f3a", "port": 5432}


def test_keys_as_files_and_a_template_from_two_secrets(provider: RunningProvider, sm: Any) -> None:
    db_version = sm.create_secret(Name="team/db", SecretString=json.dumps(DB))["VersionId"]
    sm.create_secret(Name="team/api", SecretString="api-k3y")
    objects = (
        "- objectName: team/db\n  objectType: secretsmanager\n  objectAlias: db\n"
        "- objectName: team/api\n  objectType: secretsmanager\n  objectAlias: api\n"
    )
    response = provider.mount(
        attrs(
            objects,
            keysAsFiles="- file: db\n  directory: db.d\n  keys: [username, password]\n"
            "  keepFile: false\n",
            templates="- file: app.env\n  mode: '0400'\n  template: |\n"
            "    DB_URL=postgres://{{ db.username }}@{{ db.host }}:{{ db.port }}\n"
            "    API_KEY={{ api }}\n",
        )
    )
    assert files_of(response) == {
        "api": (0o644, b"api-k3y"),
        "db.d/username": (0o644, b"app"),
        "db.d/password": (0o644, b"pw-7f3a"),
        "app.env": (0o400, b"DB_URL=postgres://app@db.internal:5432\nAPI_KEY=api-k3y\n"),
    }
    # The objects' versions are reported as ever: the driver's rotation keys on them.
    assert versions_of(response)["db"] == db_version


def test_a_secret_that_is_not_json_fails_the_whole_mount(
    provider: RunningProvider, sm: Any
) -> None:
    sm.create_secret(Name="plain", SecretString="not-json-secret")
    error = provider.mount_error(
        attrs("- objectName: plain\n  objectType: secretsmanager\n", keysAsFiles="- file: plain")
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "InvalidSecretFormat" in (error.details() or "")
    assert "not-json-secret" not in (error.details() or "")


def test_a_bad_template_is_refused_before_any_backend_call(
    provider: RunningProvider, sm: Any
) -> None:
    # No secret exists: a fetch would say NOT_FOUND, so INVALID_ARGUMENT proves
    # the template was checked first.
    error = provider.mount_error(
        attrs(
            "- objectName: missing\n  objectType: secretsmanager\n",
            templates="- file: out\n  template: '{% macro m() %}{% endmacro %}'",
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "macros are not allowed" in (error.details() or "")
