"""Scenario 1: a pod with a CSI volume of each backend's example class starts and reads it.

The whole path is real: kubelet asks the driver binary to mount the volume with
the pod's projected tokens, the driver calls our chart-installed provider, the
provider calls the backend with those tokens, the driver writes the files and
the container reads them; contents and modes are checked as the container
sees them, and the object versions as the driver recorded them.
"""

from __future__ import annotations

import pytest

from tests.e2e import pods
from tests.e2e.conftest import APP_SA, World


def recorded_versions(world: World, pod: str, spc: str) -> dict[str, str]:
    status = world.cluster.get(
        "secretproviderclasspodstatus", "-n", "default", f"{pod}-default-{spc}"
    )["status"]
    assert status["mounted"] is True
    assert status["secretProviderClassName"] == spc
    return {o["id"]: o["version"] for o in status["objects"]}


@pytest.mark.parametrize("backend", ["aws", "azure", "vault"])
def test_pod_reads_the_example_class(world: World, backend: str) -> None:
    scenario = world.scenario(backend)
    world.cluster.apply(scenario.spc_yaml)
    name = f"mount-{backend}"
    world.cluster.apply(pods.pod(name, APP_SA, pods.FILES_SCRIPT, spc=scenario.spc_name))
    try:
        seen = pods.wait_for_round(world.cluster, name, "FILE")
        assert seen == scenario.files
        assert recorded_versions(world, name, scenario.spc_name) == scenario.versions
    finally:
        pods.delete(world.cluster, name)
