"""Scenarios 2 and 3: secretObjects become a Kubernetes Secret, and rotation reaches both.

The driver binary's own controllers do the work here: its secret-sync creates
the Secret from the mounted files when a pod mounts the class, a second pod
reads it as environment variables, and with CSIDriver requiresRepublish
kubelet re-publishes the volume every syncFrequency (10 s) so the driver's
rotation (--rotation-poll-interval 5 s) fetches again: a value changed at
the backend must reach the first pod's files and the synced Secret.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import yaml

from tests.conformance.backends import Scenario
from tests.e2e import pods
from tests.e2e.cluster import ClusterError
from tests.e2e.conftest import APP_SA, World


def with_secret_objects(scenario: Scenario, secret: str, data: dict[str, str]) -> dict[str, Any]:
    """The scenario's class, plus secretObjects syncing ``data`` (key -> file) to ``secret``."""
    spc: dict[str, Any] = yaml.safe_load(scenario.spc_yaml)
    spc["spec"]["secretObjects"] = [{
        "secretName": secret,
        "type": "Opaque",
        "labels": {"app.kubernetes.io/part-of": "polysecret-e2e"},
        "data": [{"objectName": file, "key": key} for key, file in data.items()],
    }]  # fmt: skip
    return spc


def secret_data(world: World, name: str) -> dict[str, bytes]:
    secret = world.cluster.get("secret", "-n", "default", name)
    return {k: base64.b64decode(v) for k, v in secret.get("data", {}).items()}


def wait_secret(world: World, name: str, expected: dict[str, bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    seen: dict[str, bytes] | str = "absent"
    while time.monotonic() < deadline:
        try:
            seen = secret_data(world, name)
        except ClusterError:
            seen = "absent"
        if seen == expected:
            return
        time.sleep(0.5)
    keys = sorted(seen) if isinstance(seen, dict) else seen
    raise AssertionError(f"Secret {name} never held the expected data (last keys: {keys})")


def test_secret_objects_sync_to_a_secret_that_a_second_pod_reads_as_env(world: World) -> None:
    scenario = world.scenario("aws")
    secret = f"{scenario.spc_name}-synced"
    world.cluster.apply(with_secret_objects(
        scenario, secret, {"username": "db-username", "password": "db-password"}))  # fmt: skip
    mounting, consuming = "sync-mount", "sync-env"
    world.cluster.apply(pods.pod(mounting, APP_SA, pods.FILES_SCRIPT, spc=scenario.spc_name))
    try:
        files = pods.wait_for_round(world.cluster, mounting, "FILE")
        assert files == scenario.files
        expected = {"username": b"app-user", "password": scenario.files["db-password"][1]}
        wait_secret(world, secret, expected)
        labels = world.cluster.get("secret", "-n", "default", secret)["metadata"]["labels"]
        assert labels["secrets-store.csi.k8s.io/managed"] == "true"
        assert labels["app.kubernetes.io/part-of"] == "polysecret-e2e"

        env = {"DB_USER": (secret, "username"), "DB_PASSWORD": (secret, "password")}
        world.cluster.apply(pods.pod(consuming, APP_SA, pods.env_script(list(env)),
                                     env_from_secret=env))  # fmt: skip
        seen = pods.wait_for_round(world.cluster, consuming, "ENV")
        assert seen == {"DB_USER": b"app-user", "DB_PASSWORD": expected["password"]}
    finally:
        pods.delete(world.cluster, mounting, consuming)


def test_rotation_reaches_the_pods_files_and_the_synced_secret(world: World) -> None:
    scenario = world.scenario("vault")
    secret = f"{scenario.spc_name}-synced"
    world.cluster.apply(with_secret_objects(scenario, secret, {"password": "db-password"}))
    name = "rotate"
    world.cluster.apply(pods.pod(name, APP_SA, pods.FILES_SCRIPT, spc=scenario.spc_name))
    try:
        assert pods.wait_for_round(world.cluster, name, "FILE") == scenario.files
        wait_secret(world, secret, {"password": scenario.files["db-password"][1]})

        new_files, new_versions = scenario.rotate()
        assert new_files != scenario.files
        rotated = pods.wait_for_round(world.cluster, name, "FILE", timeout=120,
                                      until=lambda r: r == new_files)  # fmt: skip
        assert rotated == new_files
        wait_secret(world, secret, {"password": new_files["db-password"][1]})
        status = world.cluster.get("secretproviderclasspodstatus", "-n", "default",
                                   f"{name}-default-{scenario.spc_name}")["status"]  # fmt: skip
        assert {o["id"]: o["version"] for o in status["objects"]} == new_versions
    finally:
        pods.delete(world.cluster, name)
