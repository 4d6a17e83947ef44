"""Scenario 6: errors as users see them, in the pod's FailedMount events.

kubelet records the driver's NodePublishVolume error, which carries our gRPC
status text, as the pod's event. It must start with our stable code, name the
object (and the parameter), and hold no secret value and no token.
"""

from __future__ import annotations

import time

import yaml

from tests.e2e import pods
from tests.e2e.conftest import APP_SA, World


def failed_mount(world: World, pod: str, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in world.cluster.events("default", pod):
            if event.get("reason") == "FailedMount":
                return str(event["message"])
        time.sleep(0.5)
    raise AssertionError(f"no FailedMount event for pod {pod} in {timeout:.0f}s")


def assert_nothing_secret(message: str, known: list[bytes]) -> None:
    for value in known:
        assert value.decode(errors="replace") not in message
    # A service-account token is a JWT: base64url JSON, "eyJ..." from its first byte.
    assert "eyJ" not in message


def test_denied_object_fails_the_mount_with_access_denied_naming_it(world: World) -> None:
    scenario = world.scenario("aws")
    world.cluster.apply(scenario.denied.spc_yaml)
    name = "denied"
    world.cluster.apply(pods.pod(name, APP_SA, pods.FILES_SCRIPT, spc=scenario.spc_name))
    try:
        message = failed_mount(world, name)
        # The driver wraps our status; ours is word for word the conformance suite's.
        assert message.startswith('MountVolume.SetUp failed for volume "secrets" : rpc error: '
                                  "code = PermissionDenied desc = failed to mount")
        assert f"err: rpc error: {scenario.denied.grpc_text}" in message
        assert_nothing_secret(message, scenario.known_secrets)
        # All or nothing: the container never started with a partial volume.
        assert world.cluster.get("pod", "-n", "default", name)["status"]["phase"] == "Pending"
        assert world.cluster.pod_log("default", name, "app") == ""
    finally:
        pods.delete(world.cluster, name)


def test_missing_object_fails_the_mount_with_object_not_found(world: World) -> None:
    scenario = world.scenario("vault")
    world.cluster.apply(scenario.missing.spc_yaml)
    name = "missing"
    world.cluster.apply(pods.pod(name, APP_SA, pods.FILES_SCRIPT, spc=scenario.spc_name))
    try:
        message = failed_mount(world, name)
        assert f"err: rpc error: {scenario.missing.grpc_text}" in message
        assert_nothing_secret(message, scenario.known_secrets)
        assert world.cluster.pod_log("default", name, "app") == ""
    finally:
        pods.delete(world.cluster, name)


def test_bad_parameter_fails_the_mount_with_invalid_parameters(world: World) -> None:
    scenario = world.scenario("aws")
    spc = yaml.safe_load(scenario.spc_yaml)
    spc["spec"]["parameters"]["objects"] += "- objectName: bad-type\n  objectType: vault\n"
    world.cluster.apply(spc)
    name = "bad-parameter"
    world.cluster.apply(pods.pod(name, APP_SA, pods.FILES_SCRIPT, spc=scenario.spc_name))
    try:
        message = failed_mount(world, name)
        assert message.endswith(
            "err: rpc error: code = InvalidArgument desc = InvalidParameters: object 'bad-type': "
            "parameter 'objectType': 'vault' must be secretsmanager or ssmparameter"
        )
        assert_nothing_secret(message, scenario.known_secrets)
    finally:
        pods.delete(world.cluster, name)
