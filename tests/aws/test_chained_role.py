"""A second role chained after the pod's (``assumeRoleArn``): cross-account reads.

moto puts an assumed role's caller in the role's account, so a secret seeded
in the other account is only visible through the chained role: the mount
proves the chain was used. STS operations are counted by the region proxy.
"""

from __future__ import annotations

from typing import Any

import boto3
import grpc
import pytest

from provider.backends.aws import AwsSettings
from tests.aws.conftest import STS_TOKEN, ProviderFactory, RegionProxy, attrs
from tests.support.moto import REGION, ROLE_ARN
from tests.support.running import RunningProvider, files_of, pod_attributes
from tests.support.tokens import pod_token

pytestmark = pytest.mark.aws

OTHER_ACCOUNT = "444455556666"
CHAINED = f"arn:aws:iam::{OTHER_ACCOUNT}:role/cross-reader"
ONE = "- {objectName: shared/db, objectType: secretsmanager, objectAlias: db}"


@pytest.fixture
def other_account_secret(moto_url: str) -> None:
    sts = boto3.client(
        "sts", region_name=REGION, endpoint_url=moto_url,
        aws_access_key_id="seed", aws_secret_access_key="seed",
    )  # fmt: skip
    creds = sts.assume_role(RoleArn=CHAINED, RoleSessionName="seed")["Credentials"]
    boto3.client(
        "secretsmanager", region_name=REGION, endpoint_url=moto_url,
        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    ).create_secret(Name="shared/db", SecretString="cross")  # fmt: skip


def _provider(make: ProviderFactory, proxy: RegionProxy) -> RunningProvider:
    return make(AwsSettings(region=REGION, endpoint_url=proxy.url))


def _as(sa: str, **params: str) -> dict[str, str]:
    return pod_attributes(
        {"objects": ONE, "roleArn": ROLE_ARN, **params},
        service_account=sa, pod=f"{sa}-0",
        tokens={"sts.amazonaws.com": pod_token("sts.amazonaws.com", "default", sa)},
    )  # fmt: skip


@pytest.mark.usefixtures("other_account_secret")
def test_the_chained_role_reads_the_other_account(
    make_provider: ProviderFactory, region_proxy: RegionProxy
) -> None:
    running = _provider(make_provider, region_proxy)
    # Without the chain the pod's own account has no such secret.
    err = running.mount_error(attrs(ONE))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    chained = {"assumeRoleArn": CHAINED, "assumeRoleExternalId": "ext-1",
               "assumeRoleDurationSeconds": "900"}  # fmt: skip
    for _ in range(3):
        resp = running.mount(attrs(ONE, **chained))
        assert files_of(resp) == {"db": (0o644, b"cross")}
    # One login and one AssumeRole for the identity, whatever the number of mounts.
    assert region_proxy.count("AssumeRoleWithWebIdentity") == 1
    assert region_proxy.count("AssumeRole") == 1
    (asked,) = [f for f in region_proxy.forms if f["Action"] == ["AssumeRole"]]
    assert asked["RoleArn"] == [CHAINED] and asked["ExternalId"] == ["ext-1"]
    assert asked["DurationSeconds"] == ["900"]
    assert asked["RoleSessionName"] == ["polysecret-default-app"]


@pytest.mark.usefixtures("other_account_secret")
def test_cached_per_identity_and_per_parameters(
    make_provider: ProviderFactory, region_proxy: RegionProxy
) -> None:
    running = _provider(make_provider, region_proxy)
    running.mount(_as("app", assumeRoleArn=CHAINED))
    running.mount(_as("app", assumeRoleArn=CHAINED))
    assert region_proxy.count("AssumeRole") == 1
    running.mount(_as("other", assumeRoleArn=CHAINED))  # another identity: its own chain
    assert region_proxy.count("AssumeRole") == 2
    running.mount(_as("app", assumeRoleArn=CHAINED, assumeRoleExternalId="ext-2"))
    assert region_proxy.count("AssumeRole") == 3
    assert region_proxy.count("AssumeRoleWithWebIdentity") == 2  # app and other, once each


def test_a_denied_chain_names_the_role(
    make_provider: ProviderFactory, region_proxy: RegionProxy, sm: Any
) -> None:
    region_proxy.deny_operations.add("AssumeRole")
    running = _provider(make_provider, region_proxy)
    err = running.mount_error(attrs(ONE, assumeRoleArn=CHAINED))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    details = err.details() or ""
    assert details.startswith(f"AccessDenied: chained role {CHAINED!r}")
    assert "sts:AssumeRole" in details and STS_TOKEN not in details
    assert region_proxy.count("GetSecretValue") == 0


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"assumeRoleArn": CHAINED, "assumeRoleDurationSeconds": "899"}, "from 900 to 43200"),
        ({"assumeRoleArn": CHAINED, "assumeRoleDurationSeconds": "43201"}, "from 900 to 43200"),
        ({"assumeRoleArn": CHAINED, "assumeRoleDurationSeconds": "1h"}, "from 900 to 43200"),
        ({"assumeRoleArn": "arn:aws:s3:::bucket"}, "'assumeRoleArn': must be an IAM role"),
        ({"assumeRoleArn": CHAINED, "assumeRoleExternalId": "a b"}, "'assumeRoleExternalId'"),
        ({"assumeRoleExternalId": "ext"}, "'assumeRoleExternalId' needs 'assumeRoleArn'"),
        ({"assumeRoleDurationSeconds": "900"}, "'assumeRoleDurationSeconds' needs"),
    ],
)
def test_bad_chain_parameters_are_refused_before_any_request(
    make_provider: ProviderFactory, region_proxy: RegionProxy, params: dict[str, str],
    problem: str,
) -> None:  # fmt: skip
    running = _provider(make_provider, region_proxy)
    err = running.mount_error(attrs(ONE, **params))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert problem in (err.details() or "")
    assert region_proxy.calls == []
