"""Objects from several regions in one class: a per-object `region` (moto, real socket)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from tests.aws.conftest import attrs
from tests.support.moto import REGION, seed_client
from tests.support.running import RunningProvider, files_of, versions_of

pytestmark = pytest.mark.aws

OTHER = "eu-west-1"


def test_secrets_and_parameters_from_two_regions(
    provider: RunningProvider, sm: Any, ssm: Any, moto_url: str
) -> None:
    home = sm.create_secret(Name="db", SecretString="home-db")["VersionId"]
    away = seed_client(moto_url, "secretsmanager", OTHER).create_secret(
        Name="db", SecretString="away-db"
    )["VersionId"]
    ssm.put_parameter(Name="/flag", Value="home-flag", Type="String")
    seed_client(moto_url, "ssm", OTHER).put_parameter(
        Name="/flag", Value="away-flag", Type="String"
    )
    objects = (
        "- objectName: db\n  objectType: secretsmanager\n  objectAlias: db-home\n"
        "- objectName: db\n  objectType: secretsmanager\n  objectAlias: db-away\n"
        f"  region: {OTHER}\n"
        "- objectName: /flag\n  objectType: ssmparameter\n  objectAlias: flag-home\n"
        "- objectName: /flag\n  objectType: ssmparameter\n  objectAlias: flag-away\n"
        f"  region: {OTHER}\n"
    )
    response = provider.mount(attrs(objects, region=REGION))
    assert {p: c for p, (_, c) in files_of(response).items()} == {
        "db-home": b"home-db",
        "db-away": b"away-db",
        "flag-home": b"home-flag",
        "flag-away": b"away-flag",
    }
    assert versions_of(response)["db-home"] == home
    assert versions_of(response)["db-away"] == away


def test_an_arn_must_name_the_objects_own_region(provider: RunningProvider, moto_url: str) -> None:
    arn = seed_client(moto_url, "secretsmanager", OTHER).create_secret(
        Name="by-arn", SecretString="x"
    )["ARN"]
    ok = provider.mount(
        attrs(f"- objectName: {arn}\n  objectAlias: a\n  region: {OTHER}\n", region=REGION)
    )
    assert files_of(ok)["a"][1] == b"x"
    error = provider.mount_error(attrs(f"- objectName: {arn}\n  objectAlias: a\n", region=REGION))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ARN region" in (error.details() or "")


def test_a_region_that_is_no_region_name_is_named(provider: RunningProvider) -> None:
    error = provider.mount_error(
        attrs("- objectName: db\n  objectType: secretsmanager\n  region: 'eu/west'\n")
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "parameter 'region'" in (error.details() or "")
