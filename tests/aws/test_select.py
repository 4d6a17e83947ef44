"""``select`` in the AWS dialect: SSM GetParametersByPath and Secrets Manager ListSecrets.

Against moto, through the region proxy that counts each operation AWS sees.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from provider.backends.aws import AwsSettings
from tests.aws.conftest import ProviderFactory, RegionProxy, attrs
from tests.support.moto import REGION
from tests.support.running import RunningProvider, files_of, versions_of

pytestmark = pytest.mark.aws


def _provider(make: ProviderFactory, proxy: RegionProxy, **server: Any) -> RunningProvider:
    return make(AwsSettings(region=REGION, endpoint_url=proxy.url), **server)


def _ssm_select(path: str, extra: str = "", alias: str = "") -> str:
    named = f", objectAlias: {alias}" if alias else ""
    return f"- {{objectType: ssmparameter{named}, select: {{path: {path}{extra}}}}}"


def _sm_select(path: str, extra: str = "", alias: str = "") -> str:
    named = f", objectAlias: {alias}" if alias else ""
    return f"- {{objectType: secretsmanager{named}, select: {{path: {path}{extra}}}}}"


@pytest.fixture
def app_parameters(ssm: Any) -> None:
    for name in ("/app/a", "/app/b", "/app/sub/c", "/apple"):
        ssm.put_parameter(Name=name, Value=f"v{name}", Type="SecureString")


@pytest.mark.usefixtures("app_parameters")
def test_ssm_path_mounts_each_parameter(
    make_provider: ProviderFactory, region_proxy: RegionProxy
) -> None:
    running = _provider(make_provider, region_proxy)
    resp = running.mount(attrs(_ssm_select("/app/", alias="conf"), filePermission="0400"))
    assert files_of(resp) == {"conf/a": (0o644, b"v/app/a"), "conf/b": (0o644, b"v/app/b")}
    assert versions_of(resp) == {"conf/a": "1", "conf/b": "1"}
    # One page, and the values came with it: no GetParameters.
    assert region_proxy.count("GetParametersByPath") == 1
    assert region_proxy.count("GetParameters") == 0


@pytest.mark.usefixtures("app_parameters")
def test_ssm_recursive_makes_subdirectories(
    make_provider: ProviderFactory, region_proxy: RegionProxy
) -> None:
    running = _provider(make_provider, region_proxy)
    resp = running.mount(attrs(_ssm_select("/app", ", recursive: true")))
    assert files_of(resp) == {
        "a": (0o644, b"v/app/a"),
        "b": (0o644, b"v/app/b"),
        "sub/c": (0o644, b"v/app/sub/c"),
    }


def test_ssm_pages_until_the_end(
    make_provider: ProviderFactory, region_proxy: RegionProxy, ssm: Any
) -> None:
    for i in range(23):
        ssm.put_parameter(Name=f"/many/p{i:02d}", Value=str(i), Type="String")
    running = _provider(make_provider, region_proxy)
    resp = running.mount(attrs(_ssm_select("/many")))
    assert len(files_of(resp)) == 23 and files_of(resp)["p07"] == (0o644, b"7")
    assert region_proxy.count("GetParametersByPath") == 3  # 10 a page


def test_ssm_over_the_bound_fails_naming_it(
    make_provider: ProviderFactory, region_proxy: RegionProxy, ssm: Any
) -> None:
    for i in range(25):
        ssm.put_parameter(Name=f"/many/p{i:02d}", Value=str(i), Type="String")
    running = _provider(make_provider, region_proxy)
    err = running.mount_error(attrs(_ssm_select("/many", ", max: 12")))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("SelectionTooLarge: ") and "max=12" in err.details()
    # Paging stops once past the bound: 2 pages of 10, not all 3.
    assert region_proxy.count("GetParametersByPath") == 2


def test_the_provider_maximum_bounds_max(
    make_provider: ProviderFactory, region_proxy: RegionProxy
) -> None:
    running = _provider(make_provider, region_proxy, max_objects=5)
    err = running.mount_error(attrs(_ssm_select("/many", ", max: 6")))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'max' must be between 1 and 5" in err.details()
    assert region_proxy.calls == []  # refused before any request, STS included


def test_no_match_is_not_found(make_provider: ProviderFactory, region_proxy: RegionProxy) -> None:
    running = _provider(make_provider, region_proxy)
    err = running.mount_error(attrs(_ssm_select("/nothing")))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert "'select' matched nothing under '/nothing'" in err.details()


def test_denied_listing_names_the_permission(
    make_provider: ProviderFactory, region_proxy: RegionProxy
) -> None:
    region_proxy.deny_operations.add("GetParametersByPath")
    region_proxy.deny_operations.add("ListSecrets")
    running = _provider(make_provider, region_proxy)
    err = running.mount_error(attrs(_ssm_select("/app")))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "ssm:GetParametersByPath" in err.details()
    err = running.mount_error(attrs(_sm_select("app/")))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "secretsmanager:ListSecrets" in err.details()
    assert region_proxy.count("GetSecretValue") == 0


@pytest.fixture
def app_secrets(sm: Any) -> None:
    sm.create_secret(
        Name="app/one", SecretString="1",
        Tags=[{"Key": "team", "Value": "pay"}, {"Key": "env", "Value": "prod"}],
    )
    # Matches tag-key team and tag-value pay, but not the pair team=pay.
    sm.create_secret(
        Name="app/two", SecretString="2",
        Tags=[{"Key": "team", "Value": "prod"}, {"Key": "env", "Value": "pay"}],
    )
    sm.create_secret(Name="app/three", SecretString="3")
    sm.create_secret(Name="other", SecretString="4", Tags=[{"Key": "team", "Value": "pay"}])


@pytest.mark.usefixtures("app_secrets")
def test_secrets_by_prefix(make_provider: ProviderFactory, region_proxy: RegionProxy) -> None:
    running = _provider(make_provider, region_proxy)
    resp = running.mount(attrs(_sm_select("app/", alias="s")))
    assert files_of(resp) == {
        "s/one": (0o644, b"1"), "s/three": (0o644, b"3"), "s/two": (0o644, b"2")
    }
    versions = versions_of(resp)
    assert set(versions) == {"s/one", "s/three", "s/two"} and len(set(versions.values())) == 3
    assert region_proxy.count("ListSecrets") == 1
    assert region_proxy.count("GetSecretValue") == 3


@pytest.mark.usefixtures("app_secrets")
def test_secret_tags_match_as_exact_pairs(
    make_provider: ProviderFactory, region_proxy: RegionProxy
) -> None:
    running = _provider(make_provider, region_proxy)
    resp = running.mount(attrs(_sm_select("app/", ", tags: {team: pay}")))
    assert files_of(resp) == {"one": (0o644, b"1")}
    assert region_proxy.count("GetSecretValue") == 1  # app/two never read


@pytest.mark.usefixtures("app_secrets")
def test_secrets_over_the_bound_read_no_value(
    make_provider: ProviderFactory, region_proxy: RegionProxy
) -> None:
    running = _provider(make_provider, region_proxy)
    err = running.mount_error(attrs(_sm_select("app/", ", max: 2")))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("SelectionTooLarge: ")
    assert region_proxy.count("ListSecrets") == 1
    assert region_proxy.count("GetSecretValue") == 0


def test_a_name_that_is_no_file_path_fails_before_reading(
    make_provider: ProviderFactory, region_proxy: RegionProxy, sm: Any
) -> None:
    sm.create_secret(Name="app/ok", SecretString="1")
    sm.create_secret(Name="app/../up", SecretString="2")
    running = _provider(make_provider, region_proxy)
    err = running.mount_error(attrs(_sm_select("app/")))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'app/../up'" in err.details() and "not a valid file path" in err.details()
    assert region_proxy.count("GetSecretValue") == 0


@pytest.mark.usefixtures("app_secrets")
def test_a_match_colliding_with_another_object_fails(
    make_provider: ProviderFactory, region_proxy: RegionProxy
) -> None:
    running = _provider(make_provider, region_proxy)
    other = "- {objectName: other, objectType: secretsmanager, objectAlias: one}"
    objects = _sm_select("app/") + "\n" + other
    err = running.mount_error(attrs(objects))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'one' is also written by object" in err.details()


def test_rotation_sees_an_added_entry(
    make_provider: ProviderFactory, region_proxy: RegionProxy, ssm: Any
) -> None:
    ssm.put_parameter(Name="/rot/a", Value="a", Type="String")
    running = _provider(make_provider, region_proxy)
    first = running.mount(attrs(_ssm_select("/rot")))
    assert versions_of(first) == {"a": "1"}
    ssm.put_parameter(Name="/rot/b", Value="b", Type="String")
    ssm.put_parameter(Name="/rot/a", Value="a2", Type="String", Overwrite=True)
    second = running.mount(attrs(_ssm_select("/rot")))
    assert files_of(second) == {"a": (0o644, b"a2"), "b": (0o644, b"b")}
    assert versions_of(second) == {"a": "2", "b": "1"}


def test_the_listing_is_cached_within_refresh_interval(
    make_provider: ProviderFactory, region_proxy: RegionProxy, sm: Any
) -> None:
    sm.create_secret(Name="app/one", SecretString="1")
    running = _provider(make_provider, region_proxy)
    params = {"refreshInterval": "1m"}
    for _ in range(3):
        resp = running.mount(attrs(_sm_select("app/"), **params))
        assert files_of(resp) == {"one": (0o644, b"1")}
    assert region_proxy.count("ListSecrets") == 1
    assert region_proxy.count("GetSecretValue") == 1


@pytest.mark.parametrize(
    ("objects", "problem"),
    [
        (_ssm_select("/app", ", tags: {a: b}"), "'tags' does not apply"),
        (_sm_select("app/", ", recursive: true"), "'recursive' does not apply"),
        (_ssm_select("app"), "starts with '/'"),
        ("- {select: {path: /app}}", "'objectType' is required with 'select'"),
        (
            "- {objectType: ssmparameter, objectName: x, select: {path: /app}}",
            "'objectName' does not apply with 'select'",
        ),
        (_ssm_select("/app", ", max: 0"), "'max' must be between"),
        ("- {objectType: ssmparameter, select: /app}", "parameter 'select' must be a mapping"),
    ],
)
def test_bad_select_is_refused_before_any_request(
    make_provider: ProviderFactory, region_proxy: RegionProxy, objects: str, problem: str
) -> None:
    running = _provider(make_provider, region_proxy)
    # backend: aws, since a select without objectType carries no AWS mark.
    err = running.mount_error(attrs(objects, backend="aws"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert problem in err.details()
    assert region_proxy.calls == []
