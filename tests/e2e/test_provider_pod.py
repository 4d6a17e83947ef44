"""The provider every other scenario calls is the chart's DaemonSet pod, in our image.

kubelet runs it from the image ``make image`` built (the very image: its ID
is podman's), with the template's args and security context, owned by the
DaemonSet, its ServiceAccount token projected by kubelet, Ready through the
chart's own readiness probe, and never restarted.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.e2e import daemonset_pod
from tests.e2e.chart import NAMESPACE, PodProvider, image
from tests.e2e.conftest import World


def test_the_provider_is_the_daemonsets_pod_in_our_image(world: World) -> None:
    provider = world.provider
    if not isinstance(provider, PodProvider):
        pytest.skip("POLYSECRET_E2E_PROVIDER=process: the provider is a host process")
    pod = world.cluster.get("pod", "-n", NAMESPACE, provider.pod)
    template = provider.daemonset["spec"]["template"]["spec"]
    (owner,) = pod["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"]) == ("DaemonSet", provider.daemonset["metadata"]["name"])

    (container,) = pod["spec"]["containers"]
    (wanted,) = template["containers"]
    assert container["image"] == wanted["image"] == image()
    assert container["imagePullPolicy"] == "Never"
    assert container["args"] == wanted["args"]
    assert container["securityContext"] == wanted["securityContext"]
    # The ServiceAccount admission added the token kubelet projects through TokenRequest.
    projected = [v for v in pod["spec"]["volumes"] if "projected" in v]
    assert any("serviceAccountToken" in s for v in projected for s in v["projected"]["sources"])

    (status,) = pod["status"]["containerStatuses"]
    assert status["ready"] is True
    assert status["restartCount"] == 0
    podman_id = subprocess.run(
        [*daemonset_pod.PODMAN, "image", "inspect", "--format", "{{.Id}}", image()],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert status["imageID"] == f"sha256:{podman_id}"
