"""Auth as the pod (IRSA, Pod Identity), the region, failover, and the credential cache."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from provider.backends.aws import AwsSettings
from provider.backends.aws.backend import AwsBackend
from provider.backends.aws.credentials import POD_IDENTITY_IPV4, POD_IDENTITY_IPV6
from provider.backends.base import BackendServices
from tests.aws.conftest import (
    NODE_NAME,
    NODE_REGION,
    POD_IDENTITY_TOKEN,
    STS_TOKEN,
    FakeKube,
    PodIdentityAgent,
    ProviderFactory,
    RegionProxy,
    attrs,
)
from tests.support.moto import FAILOVER_REGION, REGION, ROLE_ARN, seed_client
from tests.support.running import RunningProvider, files_of, pod_attributes, versions_of
from tests.support.tokens import pod_token

pytestmark = pytest.mark.aws

SM = "objectType: secretsmanager"
ONE = f"- {{objectName: db, {SM}}}"


def _backend(running: RunningProvider) -> AwsBackend:
    backend = running.run(running.app.registry.get("aws"))
    assert isinstance(backend, AwsBackend)
    return backend


# -- IRSA -------------------------------------------------------------------


def test_irsa_role_from_service_account_annotation(
    make_provider: ProviderFactory, sm: Any, fake_kube: FakeKube
) -> None:
    sm.create_secret(Name="db", SecretString="via-annotation")
    running = make_provider(kube_api=fake_kube.url)
    resp = running.mount(attrs(ONE, role=False))
    assert files_of(resp) == {"db": (0o644, b"via-annotation")}
    assert "/api/v1/namespaces/default/serviceaccounts/app" in fake_kube.paths
    identities = _backend(running).identities
    assert len(identities) == 1
    assert identities.peek(("default", "app", "irsa", ROLE_ARN)) is not None


def test_annotation_read_once_for_many_mounts(
    make_provider: ProviderFactory, sm: Any, fake_kube: FakeKube
) -> None:
    """Rotation polls re-send the class: the ServiceAccount is read once, not per mount."""
    sm.create_secret(Name="db", SecretString="x")
    running = make_provider(kube_api=fake_kube.url)
    for _ in range(3):
        running.mount(attrs(ONE, role=False))
    assert fake_kube.paths == ["/api/v1/namespaces/default/serviceaccounts/app"]


def test_role_arn_parameter_skips_the_kubernetes_api(
    make_provider: ProviderFactory, sm: Any, fake_kube: FakeKube
) -> None:
    sm.create_secret(Name="db", SecretString="x")
    running = make_provider(kube_api=fake_kube.url)
    running.mount(attrs(ONE))
    assert fake_kube.paths == []


def test_irsa_without_kubernetes_api_needs_role_arn(provider: RunningProvider) -> None:
    err = provider.mount_error(attrs(ONE, role=False))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'roleArn' is required" in err.details()


# -- Pod Identity ------------------------------------------------------------


@pytest.mark.parametrize("address_type", ["", "ipv4", "ipv6", "auto", "IPv4", "bogus"])
def test_pod_identity(
    make_provider: ProviderFactory,
    moto_url: str,
    sm: Any,
    pod_identity_agent: PodIdentityAgent,
    address_type: str,
) -> None:
    sm.create_secret(Name="db", SecretString="via-pod-identity")
    running = make_provider(
        AwsSettings(
            region=REGION, endpoint_url=moto_url, pod_identity_endpoint=pod_identity_agent.url
        )
    )
    params = {"usePodIdentity": "true"}
    if address_type:
        params["preferredAddressType"] = address_type
    resp = running.mount(
        attrs(ONE, role=False, tokens={"pods.eks.amazonaws.com": POD_IDENTITY_TOKEN}, **params)
    )
    assert files_of(resp) == {"db": (0o644, b"via-pod-identity")}
    assert pod_identity_agent.requests == 1


@pytest.mark.parametrize(
    ("address_type", "endpoints"),
    [
        pytest.param("ipv4", (POD_IDENTITY_IPV4,), id="ipv4"),
        pytest.param("ipv6", (POD_IDENTITY_IPV6,), id="ipv6"),
        pytest.param("auto", (POD_IDENTITY_IPV4, POD_IDENTITY_IPV6), id="auto"),
    ],
)
def test_preferred_address_type_picks_agent_address(
    address_type: str, endpoints: tuple[str, ...]
) -> None:
    backend = AwsBackend(AwsSettings(region=REGION), BackendServices())
    assert backend.logins.pod_identity_endpoints(address_type) == endpoints


def test_pod_identity_wrong_token_is_denied(
    make_provider: ProviderFactory, moto_url: str, pod_identity_agent: PodIdentityAgent
) -> None:
    running = make_provider(
        AwsSettings(
            region=REGION, endpoint_url=moto_url, pod_identity_endpoint=pod_identity_agent.url
        )
    )
    err = running.mount_error(
        attrs(
            ONE, usePodIdentity="true", tokens={"pods.eks.amazonaws.com": POD_IDENTITY_TOKEN + "x"}
        )
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert err.details().startswith("AuthFailed: ")


def test_use_pod_identity_false_uses_irsa(
    make_provider: ProviderFactory, moto_url: str, sm: Any, pod_identity_agent: PodIdentityAgent
) -> None:
    sm.create_secret(Name="db", SecretString="x")
    running = make_provider(
        AwsSettings(
            region=REGION, endpoint_url=moto_url, pod_identity_endpoint=pod_identity_agent.url
        )
    )
    running.mount(attrs(ONE, usePodIdentity="false"))
    assert pod_identity_agent.requests == 0


# -- region -----------------------------------------------------------------


def test_region_parameter_overrides_provider_default(
    provider: RunningProvider, moto_url: str
) -> None:
    seed_client(moto_url, "secretsmanager", FAILOVER_REGION).create_secret(
        Name="db", SecretString="west"
    )
    resp = provider.mount(attrs(ONE, region=FAILOVER_REGION))
    assert files_of(resp) == {"db": (0o644, b"west")}


def test_region_from_node_label(
    make_provider: ProviderFactory, moto_url: str, fake_kube: FakeKube
) -> None:
    west = seed_client(moto_url, "secretsmanager", NODE_REGION)
    arn = west.create_secret(Name="db", SecretString="node-region")["ARN"]
    running = make_provider(
        AwsSettings(endpoint_url=moto_url), kube_api=fake_kube.url, node_name=NODE_NAME
    )
    resp = running.mount(attrs(ONE))
    assert files_of(resp) == {"db": (0o644, b"node-region")}
    assert f"/api/v1/nodes/{NODE_NAME}" in fake_kube.paths
    # An ARN from another region is checked against the node's region too.
    east_arn = arn.replace(NODE_REGION, REGION)
    err = running.mount_error(attrs(f"- objectName: {east_arn}"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"must match the region {NODE_REGION!r}" in err.details()


@pytest.mark.parametrize(
    ("node_name", "labels", "needle"),
    [
        pytest.param("", {}, "AWS_REGION", id="no-node-name"),
        pytest.param(NODE_NAME, {}, "has no topology.kubernetes.io/region label", id="no-label"),
    ],
)
def test_region_required(  # noqa: PLR0917 - fixtures and table columns
    make_provider: ProviderFactory,
    moto_url: str,
    fake_kube: FakeKube,
    node_name: str,
    labels: dict[str, str],
    needle: str,
) -> None:
    fake_kube.nodes[NODE_NAME] = labels
    running = make_provider(
        AwsSettings(endpoint_url=moto_url), kube_api=fake_kube.url, node_name=node_name
    )
    err = running.mount_error(attrs(ONE))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'region' is required" in err.details() and needle in err.details()


# -- failover ---------------------------------------------------------------


@pytest.fixture
def two_regions(moto_url: str) -> tuple[Any, Any]:
    east = seed_client(moto_url, "secretsmanager", REGION)
    west = seed_client(moto_url, "secretsmanager", FAILOVER_REGION)
    return east, west


def test_failover_only_when_primary_fails_transiently(
    make_provider: ProviderFactory,
    region_proxy: RegionProxy,
    two_regions: tuple[Any, Any],
    moto_url: str,
) -> None:
    east, west = two_regions
    east.create_secret(Name="db", SecretString="east")
    west_version = west.create_secret(Name="db", SecretString="west")["VersionId"]
    seed_client(moto_url, "ssm", REGION).put_parameter(Name="/p", Value="east-p", Type="String")
    seed_client(moto_url, "ssm", FAILOVER_REGION).put_parameter(
        Name="/p", Value="west-p", Type="String"
    )
    running = make_provider(AwsSettings(region=REGION, endpoint_url=region_proxy.url))
    a = attrs(
        f"{ONE}\n- {{objectName: /p, objectType: ssmparameter}}", failoverRegion=FAILOVER_REGION
    )

    resp = running.mount(a)
    assert files_of(resp) == {"db": (0o644, b"east"), "_p": (0o644, b"east-p")}
    assert (
        region_proxy.count("GetSecretValue", FAILOVER_REGION) == 0
    )  # healthy primary: no failover call

    region_proxy.failing.add(REGION)
    before = region_proxy.count("GetSecretValue", REGION)
    resp = running.mount(a)
    assert files_of(resp) == {"db": (0o644, b"west"), "_p": (0o644, b"west-p")}
    assert versions_of(resp)["db"] == west_version
    # Retried by the provider's own loop (4 attempts, no hidden SDK retries), then failed over.
    assert region_proxy.count("GetSecretValue", REGION) - before == 4
    assert region_proxy.count("GetSecretValue", FAILOVER_REGION) == 1


def test_no_failover_on_definite_errors(
    make_provider: ProviderFactory, region_proxy: RegionProxy, two_regions: tuple[Any, Any]
) -> None:
    _east, west = two_regions
    west.create_secret(Name="db", SecretString="west")
    running = make_provider(AwsSettings(region=REGION, endpoint_url=region_proxy.url))
    err = running.mount_error(attrs(ONE, failoverRegion=FAILOVER_REGION))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert region_proxy.count("GetSecretValue", FAILOVER_REGION) == 0


def test_failover_object(
    make_provider: ProviderFactory, region_proxy: RegionProxy, two_regions: tuple[Any, Any]
) -> None:
    east, west = two_regions
    east.create_secret(Name="db-east", SecretString="east")
    west.create_secret(Name="db-west", SecretString="replica")
    running = make_provider(AwsSettings(region=REGION, endpoint_url=region_proxy.url))
    objects = (
        f"- {{objectName: db-east, {SM}, objectAlias: db, failoverObject: {{objectName: db-west}}}}"
    )
    a = attrs(objects, failoverRegion=FAILOVER_REGION)
    assert files_of(running.mount(a)) == {"db": (0o644, b"east")}
    region_proxy.failing.add(REGION)
    assert files_of(running.mount(a)) == {"db": (0o644, b"replica")}


def test_both_regions_down_is_unavailable(
    make_provider: ProviderFactory, region_proxy: RegionProxy, two_regions: tuple[Any, Any]
) -> None:
    running = make_provider(AwsSettings(region=REGION, endpoint_url=region_proxy.url))
    region_proxy.failing.update({REGION, FAILOVER_REGION})
    err = running.mount_error(attrs(ONE, failoverRegion=FAILOVER_REGION))
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert FAILOVER_REGION in err.details()


# -- credential cache ---------------------------------------------------------


def test_credentials_cached_per_service_account(provider: RunningProvider, sm: Any) -> None:
    sm.create_secret(Name="db", SecretString="x")
    backend_first = provider.mount(attrs(ONE))
    identities = _backend(provider).identities
    assert files_of(backend_first) == {"db": (0o644, b"x")}
    assert identities.stats().loads == 1
    provider.mount(attrs(ONE))
    provider.mount(
        pod_attributes(
            {"objects": ONE, "roleArn": ROLE_ARN},
            pod="app-1",
            tokens={"sts.amazonaws.com": STS_TOKEN},
        )
    )
    assert identities.stats().loads == 1  # same service account, other pod: no STS call

    for namespace, sa in [("default", "other"), ("team-b", "app")]:
        provider.mount(
            pod_attributes(
                {"objects": ONE, "roleArn": ROLE_ARN},
                namespace=namespace,
                service_account=sa,
                tokens={"sts.amazonaws.com": pod_token("sts.amazonaws.com", namespace, sa)},
            )
        )
    assert identities.stats().loads == 3
    assert len(identities) == 3
    entries = [
        identities.peek(key)
        for key in [
            ("default", "app", "irsa", ROLE_ARN),
            ("default", "other", "irsa", ROLE_ARN),
            ("team-b", "app", "irsa", ROLE_ARN),
        ]
    ]
    assert all(e is not None and e.clients() == 1 for e in entries)
    keys = {e.credentials.access_key for e in entries if e is not None}
    assert len(keys) == 3  # never shared across service accounts
