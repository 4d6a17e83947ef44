"""Test pods and what their containers report.

``kubectl exec/logs`` would dial the node's address, so a pod's container
reports what it sees on its own output, which kubelet writes to its podLogsDir:
every few seconds the secrets volume (each file's path, mode and base64
content, symlinks followed as an application reads them) or the environment.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

from tests.e2e.cluster import DRIVER, NODE, Cluster, ClusterError
from tests.e2e.images import BUSYBOX_IMAGE

MOUNT = "/mnt/secrets"
Files = dict[str, tuple[int, bytes]]

# Rounds of "FILE <round> <path> <mode> <base64>" lines closed by "END <round>".
FILES_SCRIPT = f"""n=0
while true; do
  n=$((n+1))
  for f in $(find -L {MOUNT} -type f | grep -v '/[.][.]' | sort); do
    echo "FILE $n ${{f#{MOUNT}/}} $(stat -L -c %a "$f") $(base64 -w 0 "$f")"
  done
  echo "END $n"
  sleep 2
done
"""


def env_script(names: list[str]) -> str:
    """Rounds of "ENV <round> <name> <base64 value>" for the given variables."""
    lines = "".join(
        f'  echo "ENV $n {name} $(printf %s "${name}" | base64 -w 0)"\n' for name in names
    )
    return f'n=0\nwhile true; do\n  n=$((n+1))\n{lines}  echo "END $n"\n  sleep 2\ndone\n'


def pod(name: str, service_account: str, script: str, *, spc: str | None = None,
        env_from_secret: dict[str, tuple[str, str]] | None = None,
        namespace: str = "default") -> dict[str, Any]:  # fmt: skip
    container: dict[str, Any] = {
        "name": "app",
        "image": BUSYBOX_IMAGE,
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", script],
    }
    spec: dict[str, Any] = {
        "nodeName": NODE,
        "hostNetwork": True,
        "serviceAccountName": service_account,
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 1,
        "restartPolicy": "Never",
        "containers": [container],
    }
    if spc:
        container["volumeMounts"] = [{"name": "secrets", "mountPath": MOUNT, "readOnly": True}]
        spec["volumes"] = [{"name": "secrets", "csi": {
            "driver": DRIVER, "readOnly": True,
            "volumeAttributes": {"secretProviderClass": spc}}}]  # fmt: skip
    if env_from_secret:
        container["env"] = [
            {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
            for var, (secret, key) in env_from_secret.items()
        ]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}  # fmt: skip


def rounds(output: str, kind: str) -> list[dict[str, Any]]:
    """The complete rounds a container reported, oldest first."""
    current: dict[str, Any] = {}
    done: list[dict[str, Any]] = []
    for line in output.splitlines():
        parts = line.split(" ")
        if parts[0] == "END":
            done.append(current)
            current = {}
        elif parts[0] == "FILE" == kind and len(parts) in (4, 5):
            content = base64.b64decode(parts[4]) if len(parts) == 5 else b""
            current[parts[2]] = (int(parts[3], 8), content)
        elif parts[0] == "ENV" == kind and len(parts) in (3, 4):
            current[parts[2]] = base64.b64decode(parts[3]) if len(parts) == 4 else b""
    return done


def wait_for_round(cluster: Cluster, name: str, kind: str, *, timeout: float = 90.0,
                   until: Callable[[dict[str, Any]], bool] = lambda _: True,
                   namespace: str = "default") -> dict[str, Any]:  # fmt: skip
    """The newest round that satisfies ``until``; fails with the pod's events."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        done = rounds(cluster.pod_log(namespace, name, "app"), kind)
        if done:
            last = done[-1]
            if until(last):
                return last
        time.sleep(0.5)
    events = [f"{e.get('reason')}: {e.get('message')}" for e in cluster.events(namespace, name)]
    raise ClusterError(f"pod {name}: no matching report in {timeout:.0f}s; last {last!r}; "
                       f"events: {events}")  # fmt: skip


def delete(cluster: Cluster, *names: str, namespace: str = "default") -> None:
    if names:
        cluster.kubectl("delete", "pod", "-n", namespace, "--grace-period=1",
                        "--ignore-not-found", "--timeout=90s", *names)  # fmt: skip
