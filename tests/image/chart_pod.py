"""Turn the chart's rendered DaemonSet into a ``podman run`` command line.

Why this exists: the image test must run the container the way Kubernetes
would run the chart's pod, and keep doing so when the chart changes. So the
chart is rendered with helm and every field of the pod spec that shapes the
container is translated here (security context, volumes, env, network,
args). A field this module does not know is an error, never silently
dropped: a new chart setting must be given its podman meaning here first.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "daemonset" / "chart"
KUBE_VERSION = "1.34.0"


def helm() -> Path:
    """The helm scripts/install-helm.sh built (make install-test runs it)."""
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "install-helm.sh")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return Path(proc.stdout.strip().splitlines()[-1])


def render_daemonset(values: Mapping[str, str]) -> dict[str, Any]:
    """The DaemonSet ``helm template`` renders with ``--set`` ``values``."""
    args = [str(helm()), "template", "polysecret", str(CHART), "--namespace", "kube-system",
            "--kube-version", KUBE_VERSION]  # fmt: skip
    for key, value in values.items():
        args += ["--set", f"{key}={value}"]
    rendered = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    for doc in yaml.safe_load_all(rendered):
        if doc and doc.get("kind") == "DaemonSet":
            return dict(doc)
    raise AssertionError("the chart rendered no DaemonSet")


@dataclass(frozen=True)
class PodRun:
    """What ``podman run`` needs, and what the test checks the container against."""

    options: list[str]  # podman run options (before the image)
    args: list[str]  # the container's args (after the image)
    uid: int  # the uid the process must run as
    socket_dir: str  # the socket directory inside the container


CONTAINER_KEYS = {"name", "image", "imagePullPolicy", "args", "env", "envFrom", "ports",
                  "livenessProbe", "readinessProbe", "resources", "securityContext",
                  "volumeMounts"}  # fmt: skip
POD_KEYS = {"serviceAccountName", "automountServiceAccountToken", "priorityClassName",
            "hostNetwork", "dnsPolicy", "dnsConfig", "terminationGracePeriodSeconds",
            "securityContext", "containers", "volumes", "nodeSelector", "affinity",
            "tolerations", "imagePullSecrets"}  # fmt: skip


def _security(
    container: Mapping[str, Any], pod: Mapping[str, Any], image_uid: int
) -> tuple[list[str], int]:
    options: list[str] = []
    merged = {**(pod.get("securityContext") or {}), **(container.get("securityContext") or {})}
    uid, gid = merged.pop("runAsUser", image_uid), merged.pop("runAsGroup", None)
    if merged.pop("runAsNonRoot", False) and uid == 0:
        raise AssertionError("runAsNonRoot with uid 0: Kubernetes would refuse to start the pod")
    options += ["--user", f"{uid}" if gid is None else f"{uid}:{gid}"]
    for group in merged.pop("supplementalGroups", []):
        options += ["--group-add", str(group)]
    if merged.pop("allowPrivilegeEscalation", True) is False:
        options += ["--security-opt", "no-new-privileges"]
    if merged.pop("privileged", False):
        options.append("--privileged")
    if merged.pop("readOnlyRootFilesystem", False):
        # Only the pod's own volumes are writable: no podman tmpfs on /tmp, /run, /var/tmp.
        options += ["--read-only", "--read-only-tmpfs=false"]
    caps = merged.pop("capabilities", {})
    options += [f"--cap-drop={c}" for c in caps.get("drop", [])]
    options += [f"--cap-add={c}" for c in caps.get("add", [])]
    seccomp = merged.pop("seccompProfile", {"type": "RuntimeDefault"})
    if seccomp.get("type") != "RuntimeDefault":  # podman's default profile is its runtime default
        raise AssertionError(f"seccompProfile {seccomp} has no podman translation here")
    if merged:
        raise AssertionError(f"securityContext fields without a podman translation: {merged}")
    return options, int(uid)


def _volumes(
    container: Mapping[str, Any], pod: Mapping[str, Any], host_paths: Mapping[str, Path]
) -> list[str]:
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    options: list[str] = []
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        path = mount["mountPath"]
        ro = ",ro" if mount.get("readOnly") else ""
        if "hostPath" in volume:
            host = host_paths[volume["hostPath"]["path"]]
            options += ["--volume", f"{host}:{path}{ro}"]
        elif "emptyDir" in volume:
            size = volume["emptyDir"].get("sizeLimit", "")
            limit = f",size={size.removesuffix('i').lower()}" if size else ""
            options += ["--tmpfs", f"{path}:rw,mode=1777{limit}"]
        else:
            raise AssertionError(f"volume {volume} has no podman translation here")
    return options


def pod_run(
    daemonset: Mapping[str, Any], *, host_paths: Mapping[str, Path], node: str, image_uid: int
) -> PodRun:
    """The podman options that give the container what the pod spec gives it.

    ``host_paths`` maps each hostPath in the spec to the directory standing in
    for it on this machine; ``image_uid`` is the image's USER (used when the
    spec sets no runAsUser, as Kubernetes does).
    """
    pod = daemonset["spec"]["template"]["spec"]
    unknown = set(pod) - POD_KEYS
    assert not unknown, f"pod spec fields without a podman translation: {unknown}"
    (container,) = pod["containers"]
    unknown = set(container) - CONTAINER_KEYS
    assert not unknown, f"container fields without a podman translation: {unknown}"
    if not pod.get("hostNetwork"):
        raise AssertionError("render with hostNetwork=true: the probes are read on loopback")
    options = ["--network", "host"]
    security, uid = _security(container, pod, image_uid)
    options += security
    options += _volumes(container, pod, host_paths)
    for env in container.get("env", []):
        if "value" in env:
            options += ["--env", f"{env['name']}={env['value']}"]
        elif env.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName":
            options += ["--env", f"{env['name']}={node}"]
        else:
            raise AssertionError(f"env {env} has no podman translation here")
    limits = container.get("resources", {}).get("limits", {})
    if "memory" in limits:
        options += ["--memory", _bytes(limits["memory"])]
    socket_dir = next(
        m["mountPath"] for m in container["volumeMounts"] if m["name"] == "providers-dir"
    )
    return PodRun(options, list(container.get("args", [])), uid, socket_dir)


def _bytes(quantity: str) -> str:
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return str(int(quantity[: -len(suffix)]) * factor)
    return quantity


def podman() -> list[str]:
    """podman with runc and cgroupfs: crun fails on these VMs (install-image-deps.sh)."""
    return ["podman", "--runtime", "/usr/sbin/runc", "--cgroup-manager", "cgroupfs"]


def run(args: Sequence[str], *, check: bool = True, timeout: float = 120) -> str:
    proc = subprocess.run(
        [*podman(), *args], check=False, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "LC_ALL": "C"},
    )  # fmt: skip
    if check and proc.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout
