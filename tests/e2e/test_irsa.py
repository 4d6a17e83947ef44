"""Scenario 5: AWS IRSA with the role read from the pod's ServiceAccount annotation.

The class sets no roleArn, so the provider reads eks.amazonaws.com/role-arn
from the pod's ServiceAccount through the real API server, as its own
ServiceAccount with the chart's RBAC (rbac.serviceAccounts). Installed with
values that remove that permission, the provider gets no API token (the chart
mounts none) and the pod's events say what to fix.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml

from tests.conformance.backends import Scenario
from tests.e2e import pods
from tests.e2e.chart import Provider, install, mode
from tests.e2e.conftest import World
from tests.e2e.test_errors import assert_nothing_secret, failed_mount
from tests.support.moto import REGION, ROLE_ARN

IRSA_SA = "irsa-app"
NO_RBAC = "polysecret-norbac"


@pytest.fixture(scope="module")
def no_rbac_provider(world: World) -> Iterator[Provider]:
    provider = install(world.cluster, {"aws": {"region": REGION, "endpointUrl": world.aws.url}},
                       release=NO_RBAC, socket_name=NO_RBAC,
                       rbac={"create": True, "serviceAccounts": False, "nodes": False})  # fmt: skip
    yield provider
    provider.stop()


def irsa_class(world: World, provider: str) -> Scenario:
    scenario = world.scenario("aws")
    spc = yaml.safe_load(scenario.spc_yaml)
    del spc["spec"]["parameters"]["roleArn"]
    spc["spec"]["provider"] = provider
    world.cluster.apply({"apiVersion": "v1", "kind": "ServiceAccount",
                         "metadata": {"name": IRSA_SA, "namespace": "default",
                                      "annotations": {"eks.amazonaws.com/role-arn": ROLE_ARN}},
                         "automountServiceAccountToken": False})  # fmt: skip
    world.cluster.apply(spc)
    return scenario


def test_role_from_the_service_account_annotation_with_the_charts_rbac(world: World) -> None:
    scenario = irsa_class(world, "polysecret")
    name = "irsa"
    world.cluster.apply(pods.pod(name, IRSA_SA, pods.FILES_SCRIPT,
                                 spc=scenario.spc_name))
    try:
        assert pods.wait_for_round(world.cluster, name, "FILE") == scenario.files
    finally:
        pods.delete(world.cluster, name)


def test_without_the_rbac_permission_the_pod_is_told_to_fix_the_rbac(
    world: World, no_rbac_provider: Provider
) -> None:
    assert not any(o["kind"] == "ClusterRole" for o in no_rbac_provider.objects)
    scenario = irsa_class(world, NO_RBAC)
    name = "irsa-no-rbac"
    world.cluster.apply(pods.pod(name, IRSA_SA, pods.FILES_SCRIPT,
                                 spc=scenario.spc_name))
    try:
        message = failed_mount(world, name)
        assert "code = PermissionDenied desc = KubernetesAccessDenied: " in message
        assert f"ServiceAccount default/{IRSA_SA}" in message
        assert "RBAC" in message
        assert_nothing_secret(message, scenario.known_secrets)
    finally:
        pods.delete(world.cluster, name)


def test_the_charts_values_without_api_access_start_the_provider(world: World) -> None:
    """The chart's own no-API values: no token and no CA mounted, and the provider starts."""
    if mode() != "image":
        pytest.skip("a host process is always given the CA file")
    provider = install(world.cluster, {"aws": {"region": REGION, "endpointUrl": world.aws.url}},
                       release=f"{NO_RBAC}-ca", socket_name=f"{NO_RBAC}-ca",
                       rbac={"create": True, "serviceAccounts": False, "nodes": False})  # fmt: skip
    provider.stop()
