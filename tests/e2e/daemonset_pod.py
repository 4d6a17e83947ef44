"""The chart's DaemonSet pod, run by the e2e cluster's own kubelet in our image.

The image ``make image`` built with podman is exported (``podman save``, a
docker-archive) and imported into the cluster's containerd with ``ctr``, as
the harness loads its busybox and pause images: no registry is reachable.

This cluster has no controller-manager or scheduler, so a DaemonSet object
makes no pods. Its controller's job is done here: a Pod with exactly the
template's metadata and spec, owned by the DaemonSet, with ``nodeName`` set
(the scheduler's job). kubelet then does everything else as on any node:
the ServiceAccount token and CA projected through TokenRequest and the
``kube-root-ca.crt`` ConfigMap (made by hand: that is the controller-manager's
too), the hostPath socket directory, the security context, the probes.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from typing import Any

from tests.e2e.cluster import NODE, Cluster, ClusterError

NAMESPACE = "kube-system"
CONTAINER = "provider"
READY_TIMEOUT = 120.0
PODMAN = ["podman", "--runtime", "/usr/sbin/runc", "--cgroup-manager", "cgroupfs"]


def load_image(cluster: Cluster, name: str) -> None:
    """podman's image into the cluster's containerd (k8s.io namespace), once."""
    if name in cluster.ctr("images", "ls", "-q").split():
        return
    archive = cluster.root / "images" / "provider.tar"
    try:
        subprocess.run([*PODMAN, "save", "--format", "docker-archive", "-o", str(archive), name],
                       capture_output=True, text=True, check=True, timeout=300)  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or exc
        raise ClusterError(
            f"cannot export {name} from podman ({detail}): run `make image`, or set "
            "POLYSECRET_E2E_PROVIDER=process to run the provider as a host process"
        ) from None
    try:
        cluster.ctr("images", "import", str(archive))
    finally:
        archive.unlink()  # ~250 MB; containerd keeps its own copy
    if name not in cluster.ctr("images", "ls", "-q").split():
        raise ClusterError(f"ctr imported {name} under another name")


def ensure_root_ca(cluster: Cluster) -> None:
    """The ConfigMap every namespace gets from the controller-manager's publisher.

    kubelet projects its ca.crt next to the token; without it the pod never starts.
    """
    cluster.apply({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "kube-root-ca.crt", "namespace": NAMESPACE},
                   "data": {"ca.crt": cluster.ca_file.read_text()}})  # fmt: skip


def pod_from(daemonset: dict[str, Any], uid: str) -> dict[str, Any]:
    """What the DaemonSet controller creates for one node: the template, as it is, on NODE.

    (The controller pins the node with a matchFields affinity for the
    scheduler; with no scheduler, ``nodeName`` binds it directly.)
    """
    template = daemonset["spec"]["template"]
    name = daemonset["metadata"]["name"]
    metadata = {
        "generateName": f"{name}-",
        "namespace": NAMESPACE,
        "labels": template["metadata"].get("labels", {}),
        "annotations": template["metadata"].get("annotations", {}),
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": name,
                             "uid": uid, "controller": True, "blockOwnerDeletion": True}],
    }  # fmt: skip
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            "spec": {**template["spec"], "nodeName": NODE}}  # fmt: skip


def create(cluster: Cluster, daemonset: dict[str, Any]) -> str:
    """Creates the DaemonSet's pod; returns its (generated) name."""
    name = daemonset["metadata"]["name"]
    uid = cluster.get("daemonset", "-n", NAMESPACE, name)["metadata"]["uid"]
    created = cluster.kubectl("create", "-f", "-", "-o", "jsonpath={.metadata.name}",
                              input=json.dumps(pod_from(daemonset, uid)))  # fmt: skip
    return created.strip()


def _ready(status: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in status.get("conditions", []))  # fmt: skip


def wait_ready(cluster: Cluster, pod: str) -> None:
    """Until kubelet reports the pod Ready (its readiness probe passed); fails on a restart."""
    deadline = time.monotonic() + READY_TIMEOUT
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = cluster.get("pod", "-n", NAMESPACE, pod).get("status", {})
        for container in status.get("containerStatuses", []):
            if container.get("restartCount", 0) or "terminated" in container.get("state", {}):
                raise ClusterError(f"provider pod {pod} exited: {container}\n"
                                   f"{log(cluster, pod)[-3000:]}")  # fmt: skip
        if _ready(status):
            return
        time.sleep(0.3)
    events = [f"{e.get('reason')}: {e.get('message')}" for e in cluster.events(NAMESPACE, pod)]
    raise ClusterError(f"provider pod {pod} not Ready after {READY_TIMEOUT:.0f}s: "
                       f"{status.get('conditions')} events {events}\n{log(cluster, pod)[-3000:]}")


def log(cluster: Cluster, pod: str) -> str:
    return cluster.pod_log(NAMESPACE, pod, CONTAINER)


def delete(cluster: Cluster, pod: str) -> str:
    """Deletes the pod (SIGTERM, the pod's own grace period); returns its whole log.

    kubelet removes a pod's logs once it is gone, so the log is read until then.
    """
    cluster.kubectl("delete", "pod", "-n", NAMESPACE, pod, "--wait=false")
    text = log(cluster, pod)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            text = max(text, log(cluster, pod), key=len)
        if not cluster.kubectl("get", "pod", "-n", NAMESPACE, pod, "--ignore-not-found",
                               "-o", "name").strip():  # fmt: skip
            return text
        time.sleep(0.3)
    raise ClusterError(f"provider pod {pod} still there 60 s after its deletion")
