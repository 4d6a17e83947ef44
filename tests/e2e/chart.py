"""Our provider, installed the way users install it: from the Helm chart.

The chart (daemonset/chart) is rendered for this cluster with helm; its
objects (ServiceAccount, RBAC, the DaemonSet) are applied to the real API
server; the provider runs as a process with exactly the DaemonSet container's
args and env (the chart's
values decide them: extraArgs carries the token and CA files that the pod
would have mounted, and loopback-only probe addresses, since the process
shares the host's network). Its API token is a bound token of the chart's
ServiceAccount from the TokenRequest API, as kubelet would mount it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.cluster import NODE, REPO, Cluster, ClusterError, wait_for
from tests.support.ports import free_port

CHART = REPO / "daemonset" / "chart"
NAMESPACE = "kube-system"
RELEASE = "polysecret"


def helm_binary() -> Path:
    cache = Path(os.environ.get("POLYSECRET_CACHE", Path.home() / ".cache" / "polysecret"))
    found = sorted(cache.glob("helm-v*/helm"))
    if not found:
        raise ClusterError("helm is not built: run scripts/install-helm.sh (make install-test)")
    return found[-1]


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    with tempfile.NamedTemporaryFile("w", prefix="polysecret-e2e-values-", suffix=".json") as fh:
        json.dump(values, fh)
        fh.flush()
        out = subprocess.run(
            [str(helm_binary()), "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
             "--kube-version", "1.34.4", "-f", fh.name],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout  # fmt: skip
    return [d for d in yaml.safe_load_all(out) if d]


@dataclass
class Provider:
    """One provider process started from the rendered DaemonSet."""

    cluster: Cluster
    name: str
    args: list[str]
    env: dict[str, str]
    health: str
    objects: list[dict[str, Any]] = field(default_factory=list)

    def start(self) -> None:
        self.cluster.start(self.name, [sys.executable, "-m", "provider", "serve", *self.args],
                           env=self.env)  # fmt: skip
        wait_for(f"provider {self.name}", lambda: self.cluster.alive(self.name) and
                 urllib.request.urlopen(f"http://{self.health}/readyz", timeout=1).status == 200,
                 log=self.cluster.log(self.name))  # fmt: skip

    def stop(self) -> None:
        self.cluster.stop(self.name)

    def log(self) -> str:
        return self.cluster.log(self.name).read_text(errors="replace")


def install(cluster: Cluster, backend_values: dict[str, Any], *, release: str = RELEASE,
            socket_name: str = "polysecret", rbac: dict[str, Any] | None = None) -> Provider:
    """Render the chart, apply its ServiceAccount and RBAC, start the provider.

    Without API access in the chart's values (no token automounted), the
    token file stays absent, as in its pod.
    """
    name = f"provider-{release}"
    health, metrics = free_port(), free_port()
    workdir = cluster.root / name
    workdir.mkdir(exist_ok=True)
    token_file, ca_file = workdir / "token", workdir / "ca.crt"
    values: dict[str, Any] = {
        "fullnameOverride": release,
        "rbac": rbac or {"create": True, "serviceAccounts": True, "nodes": False},
        "provider": {
            "name": socket_name,
            "socketDir": str(cluster.providers_dir),
            "kubeApi": cluster.api_url,
            "logLevel": "debug",
            "logFormat": "text",
        },
        "health": {"port": health},
        "metrics": {"port": metrics},
        "extraArgs": [
            # Where the pod would have its token and CA mounted.
            f"--kube-token-file={token_file}",
            f"--kube-ca-file={ca_file}",
            # In a pod these are the pod's own address; here the host's: loopback only.
            f"--health-addr=127.0.0.1:{health}",
            f"--metrics-addr=127.0.0.1:{metrics}",
        ],
        **backend_values,
    }
    docs = render(values)
    daemonset = next(d for d in docs if d["kind"] == "DaemonSet")
    # Everything the chart renders goes to the API server, which validates it; the
    # DaemonSet stays without pods (no controller-manager): its pod is this process.
    applied = docs
    cluster.apply(applied)
    pod = daemonset["spec"]["template"]["spec"]
    container = pod["containers"][0]
    account = pod["serviceAccountName"]
    args = list(container["args"])
    if pod["automountServiceAccountToken"]:
        token_file.write_text(cluster.create_token(NAMESPACE, account, duration="2h"))
        token_file.chmod(0o600)
    ca_file.write_bytes(cluster.ca_file.read_bytes())
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName":
            env[item["name"]] = NODE
    provider = Provider(cluster, name, args, env, f"127.0.0.1:{health}",
                        applied)  # fmt: skip
    provider.start()
    return provider
