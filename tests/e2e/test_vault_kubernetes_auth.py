"""Scenario 4: Vault's kubernetes auth method, with OpenBao calling the real TokenReview.

OpenBao is given the API server's address and CA and a reviewer token (a
ServiceAccount bound to system:auth-delegator); at each login it sends the
pod's kubelet-issued token (audience "vault") to the API server's TokenReview.
A pod of the bound ServiceAccount mounts; a pod of another ServiceAccount is
refused, and the refusal reaches its events.
"""

from __future__ import annotations

import yaml

from tests.e2e import pods
from tests.e2e.backends import enable_vault_kubernetes_auth
from tests.e2e.conftest import APP_SA, World
from tests.e2e.test_errors import assert_nothing_secret, failed_mount

MOUNT = "k8s-tokenreview"
ROLE = "tokenreview"
OTHER_SA = "not-bound"


def test_kubernetes_auth_reviews_the_pods_token_at_the_api_server(world: World) -> None:
    cluster = world.cluster
    cluster.apply([
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "vault-reviewer", "namespace": "default"}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": OTHER_SA, "namespace": "default"},
         "automountServiceAccountToken": False},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "e2e-vault-reviewer"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "system:auth-delegator"},
         "subjects": [{"kind": "ServiceAccount", "name": "vault-reviewer",
                       "namespace": "default"}]},
    ])  # fmt: skip
    enable_vault_kubernetes_auth(
        world.bao, MOUNT, api_url=cluster.api_url, ca_pem=cluster.ca_file.read_text(),
        reviewer_jwt=cluster.create_token("default", "vault-reviewer"),
        role=ROLE, service_account=APP_SA,
    )  # fmt: skip
    scenario = world.scenario("vault")
    spc = yaml.safe_load(scenario.spc_yaml)
    spc["spec"]["parameters"].update({"roleName": ROLE, "vaultAuthMountPath": MOUNT})
    cluster.apply(spc)

    bound, other = "tokenreview-bound", "tokenreview-other"
    cluster.apply(pods.pod(bound, APP_SA, pods.FILES_SCRIPT, spc=scenario.spc_name))
    cluster.apply(pods.pod(other, OTHER_SA, pods.FILES_SCRIPT, spc=scenario.spc_name))
    try:
        assert pods.wait_for_round(cluster, bound, "FILE") == scenario.files
        message = failed_mount(world, other)
        assert "code = PermissionDenied desc = " in message
        assert f"role '{ROLE}'" in message
        assert_nothing_secret(message, scenario.known_secrets)
        assert cluster.pod_log("default", other, "app") == ""
    finally:
        pods.delete(cluster, bound, other)
