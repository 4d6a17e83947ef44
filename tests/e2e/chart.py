"""Our provider, installed the way users install it: from the Helm chart.

The chart (daemonset/chart) is rendered for this cluster with helm and its
objects (ServiceAccount, RBAC, the DaemonSet) are applied to the real API
server. Then the provider runs in one of two ways, chosen by the environment
variable POLYSECRET_E2E_PROVIDER:

- ``image`` (the default, and what ``make e2e`` and CI run): the DaemonSet's
  pod, in the image ``make image`` built (POLYSECRET_IMAGE), imported into the
  cluster's containerd and started by its kubelet (tests/e2e/daemonset_pod.py);
- ``process``: for machines without podman, a host process with exactly the
  DaemonSet container's args and env, given the token and CA files its pod
  would have mounted.

The values differ from a user's only where this cluster differs: the socket
directory is the one the e2e driver reads, the API server is on loopback (no
kube-proxy behind the in-cluster Service address), and the pod shares the
host's network (no CNI here), so metrics stay on loopback.
"""

from __future__ import annotations

import abc
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

from tests.e2e import daemonset_pod
from tests.e2e.cluster import NODE, REPO, Cluster, ClusterError, wait_for
from tests.support.ports import free_port

CHART = REPO / "daemonset" / "chart"
NAMESPACE = "kube-system"
RELEASE = "polysecret"
MODE_ENV = "POLYSECRET_E2E_PROVIDER"
IMAGE_ENV = "POLYSECRET_IMAGE"
DEFAULT_IMAGE = "localhost/polysecret:dev"  # the Makefile's POLYSECRET_IMAGE
# Where kubelet mounts the pod's ServiceAccount token and the cluster's CA.
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# Backend CA files (host paths in the values), mounted into the pod here.
CA_DIR = "/etc/polysecret/ca"
CA_VALUES = (("azure", "caFile"), ("vault", "caCert"))


def mode() -> str:
    chosen = os.environ.get(MODE_ENV, "image")
    if chosen not in ("image", "process"):
        raise ClusterError(f"{MODE_ENV}={chosen!r}: use image (default) or process")
    return chosen


def image() -> str:
    return os.environ.get(IMAGE_ENV) or DEFAULT_IMAGE


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
class Provider(abc.ABC):
    """One release of the chart: its rendered objects and the provider they run."""

    cluster: Cluster
    release: str
    objects: list[dict[str, Any]]
    health: str  # HOST:PORT of /readyz (what kubelet's probes call)
    running: bool = False

    @property
    def name(self) -> str:
        return f"provider-{self.release}"

    @property
    def daemonset(self) -> dict[str, Any]:
        return next(d for d in self.objects if d["kind"] == "DaemonSet")

    @property
    def pod_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.daemonset["spec"]["template"]["spec"]
        return spec

    def start(self) -> None:
        """Applies this release's objects (again: a rollback), then runs the provider."""
        self.cluster.apply(self.objects)
        self._run()
        self.running = True

    def stop(self) -> None:
        self._halt()
        self.running = False

    @abc.abstractmethod
    def log(self) -> str: ...

    @abc.abstractmethod
    def _run(self) -> None: ...

    @abc.abstractmethod
    def _halt(self) -> None: ...


@dataclass
class ProcessProvider(Provider):
    """The fallback: the DaemonSet container's args and env, run as a host process."""

    workdir: Path = field(default_factory=Path)

    def _run(self) -> None:
        (container,) = self.pod_spec["containers"]
        token_file, ca_file = self.workdir / "token", self.workdir / "ca.crt"
        token_file.unlink(missing_ok=True)
        if self.pod_spec["automountServiceAccountToken"]:
            # A bound token of the chart's ServiceAccount, as kubelet would mount it.
            token = self.cluster.create_token(NAMESPACE, self.pod_spec["serviceAccountName"])
            token_file.write_text(token)
            token_file.chmod(0o600)
        ca_file.write_bytes(self.cluster.ca_file.read_bytes())
        pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        env = {"PYTHONPATH": pythonpath}
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = str(item["value"])
            elif item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName":
                env[item["name"]] = NODE
        # The pod's mount paths become this process's files.
        args = [a.replace(SA_DIR, str(self.workdir)) for a in container["args"]]
        self.cluster.start(self.name, [sys.executable, "-m", "provider", "serve", *args], env=env)
        wait_for(f"provider {self.name}", lambda: self.cluster.alive(self.name) and
                 urllib.request.urlopen(f"http://{self.health}/readyz", timeout=1).status == 200,
                 log=self.cluster.log(self.name))  # fmt: skip

    def _halt(self) -> None:
        self.cluster.stop(self.name)

    def log(self) -> str:
        return self.cluster.log(self.name).read_text(errors="replace")


@dataclass
class PodProvider(Provider):
    """The DaemonSet's pod, in our image, started by kubelet (tests/e2e/daemonset_pod.py)."""

    pod: str = ""
    # The logs of this release's earlier pods (kubelet drops a pod's logs with it).
    past_logs: str = ""

    def _run(self) -> None:
        daemonset_pod.load_image(self.cluster, image())
        daemonset_pod.ensure_root_ca(self.cluster)
        self.pod = daemonset_pod.create(self.cluster, self.daemonset)
        try:
            daemonset_pod.wait_ready(self.cluster, self.pod)
        except ClusterError:
            self._halt()  # not left restarting for the rest of the session
            raise

    def _halt(self) -> None:
        text = daemonset_pod.delete(self.cluster, self.pod)
        self.past_logs += text + "\n"
        # Kept for the session's check that no log holds a secret or a token.
        with self.cluster.log(self.name).open("a") as fh:
            fh.write(text + "\n")
        self.pod = ""

    def log(self) -> str:
        live = daemonset_pod.log(self.cluster, self.pod) if self.pod else ""
        return self.past_logs + live


def node_address(cluster: Cluster) -> str:
    """The node's InternalIP: a hostNetwork pod's IP, where kubelet sends its probes."""
    addresses = cluster.get("node", NODE)["status"]["addresses"]
    return str(next(a["address"] for a in addresses if a["type"] == "InternalIP"))


def _mount_ca_files(values: dict[str, Any], backend_values: dict[str, Any]) -> None:
    """Each backend CA file on the host, mounted read-only into the pod (values.yaml's way)."""
    volumes, mounts = values.setdefault("extraVolumes", []), values.setdefault(
        "extraVolumeMounts", [])  # fmt: skip
    for backend, key in CA_VALUES:
        host = backend_values.get(backend, {}).get(key)
        if not host:
            continue
        name = f"{backend}-ca"
        volumes.append({"name": name, "hostPath": {"path": host, "type": "File"}})
        mounts.append({"name": name, "mountPath": f"{CA_DIR}/{name}.crt", "readOnly": True})
        values[backend] = {**backend_values[backend], key: f"{CA_DIR}/{name}.crt"}


def install(cluster: Cluster, backend_values: dict[str, Any], *, release: str = RELEASE,
            socket_name: str = "polysecret",
            rbac: dict[str, Any] | None = None) -> Provider:  # fmt: skip
    """Render the chart, apply its objects, start the provider (the chosen mode)."""
    in_pod = mode() == "image"
    health, metrics = free_port(), free_port()
    # kubelet probes a hostNetwork pod at the node's InternalIP and refuses a
    # loopback node IP, so the probes' port listens there (not on every
    # interface, as the chart's ":PORT" would on the host's network); metrics,
    # which nothing here scrapes, stay on loopback.
    health_addr = f"{node_address(cluster)}:{health}" if in_pod else f"127.0.0.1:{health}"
    values: dict[str, Any] = {
        "fullnameOverride": release,
        "rbac": rbac or {"create": True, "serviceAccounts": True, "nodes": False},
        "provider": {
            "name": socket_name,
            "socketDir": str(cluster.providers_dir),
            # The in-cluster Service address has no kube-proxy behind it here.
            "kubeApi": cluster.api_url,
            "logLevel": "debug",
            "logFormat": "text",
        },
        "health": {"port": health},
        "metrics": {"port": metrics},
        "extraArgs": [
            # With --kube-api the provider sends the mounted token only when told to.
            f"--kube-token-file={SA_DIR}/token",
            f"--kube-ca-file={SA_DIR}/ca.crt",
            f"--health-addr={health_addr}",
            f"--metrics-addr=127.0.0.1:{metrics}",
        ],
        **backend_values,
    }
    if in_pod:
        repository, _, tag = image().rpartition(":")
        values["image"] = {"repository": repository, "tag": tag, "pullPolicy": "Never"}
        # No CNI here: the pod shares the host's network, as the test pods do.
        values["hostNetwork"] = True
        # Ready within a second of listening (kubelet probes every 5 s by default).
        values["health"]["readiness"] = {"periodSeconds": 1}
        _mount_ca_files(values, backend_values)
    objects = render(values)
    provider: Provider
    if in_pod:
        provider = PodProvider(cluster, release, objects, health_addr)
    else:
        workdir = cluster.root / f"provider-{release}"
        workdir.mkdir(exist_ok=True)
        provider = ProcessProvider(cluster, release, objects, health_addr, workdir=workdir)
    provider.start()
    return provider
