"""A one-node Kubernetes cluster on this machine, for the end-to-end tests.

etcd, kube-apiserver, containerd, kubelet, the Secrets Store CSI Driver and a
plugin registrar run as plain processes, all on 127.0.0.1 or Unix sockets under
one root directory (/tmp/pse2e-*: short, because socket paths must fit in 108
bytes). There is no scheduler, controller-manager or CNI: pods set nodeName and
hostNetwork. Every process is recorded by PID as it starts, and
tests/e2e/hostclean.py undoes everything, whatever state the run ended in.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.e2e import hostclean, images
from tests.support.openbao import _cert, _key, _write_key
from tests.support.ports import free_port

NODE = "e2e-node"
DRIVER = "secrets-store.csi.k8s.io"
ISSUER = "https://kubernetes.default.svc.cluster.local"
REPO = Path(__file__).resolve().parents[2]


class ClusterError(RuntimeError):
    pass


class ProcessExited(ClusterError):
    """A process the cluster needs is gone: waiting for it longer cannot help."""


def binaries_dir() -> Path:
    """scripts/install-e2e.sh's output directory (it builds only what is missing)."""
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "install-e2e.sh")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise ClusterError(f"scripts/install-e2e.sh failed:\n{done.stderr[-4000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60.0,
             log: Path | None = None) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except ProcessExited:
            raise
        except Exception:  # noqa: S110 - not ready yet (refused, 404, not found)
            pass
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise ClusterError(f"{what} not ready after {timeout:.0f}s\n{tail}")


@dataclass
class Cluster:
    root: Path
    bin: Path
    api_port: int = 0
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    node_token: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    # -- paths ----------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def ca_file(self) -> Path:
        return self.root / "pki" / "ca.crt"

    @property
    def sa_public_key(self) -> Path:
        return self.root / "pki" / "sa.pub"

    @property
    def providers_dir(self) -> Path:
        return self.root / "providers"

    @property
    def kubelet_dir(self) -> Path:
        return self.root / "kubelet"

    @property
    def pod_logs(self) -> Path:
        return self.root / "pod-logs"

    @property
    def containerd_sock(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    # -- processes --------------------------------------------------------------------

    def start(self, name: str, args: list[str], env: Mapping[str, str] | None = None) -> None:
        self.log(name).parent.mkdir(parents=True, exist_ok=True)
        with self.log(name).open("ab") as out:
            proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})}, cwd=self.root, start_new_session=True,
            )  # fmt: skip
        self.procs[name] = proc
        hostclean.record_pid(self.root, name, proc.pid)

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name)
        hostclean.stop_pids([proc.pid])
        proc.wait(5)

    def alive(self, name: str) -> bool:
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            raise ProcessExited(
                f"{name} exited: {self.log(name).read_text(errors='replace')[-3000:]}"
            )
        return True

    # -- API access ----------------------------------------------------------------------

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        done = subprocess.run(
            [str(self.bin / "kubectl"), f"--kubeconfig={self.root / 'admin.kubeconfig'}",
             f"--cache-dir={self.root / 'kubectl-cache'}", *args],  # not ~/.kube/cache
            input=input, capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def apply(self, manifest: str | list[dict[str, Any]] | dict[str, Any]) -> None:
        if not isinstance(manifest, str):
            items = manifest if isinstance(manifest, list) else [manifest]
            manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
        self.kubectl("apply", "-f", "-", input=manifest)

    def get(self, *args: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.kubectl("get", "-o", "json", *args))
        return result

    def create_token(self, namespace: str, service_account: str, audience: str = "",
                     duration: str = "2h") -> str:  # fmt: skip
        args = ["create", "token", "-n", namespace, service_account, f"--duration={duration}"]
        if audience:
            args.append(f"--audience={audience}")
        return self.kubectl(*args).strip()

    def kubeconfig(self, path: Path, token: str) -> Path:
        ca = base64.b64encode(self.ca_file.read_bytes()).decode()
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "e2e",
            "clusters": [{"name": "e2e", "cluster": {"server": self.api_url,
                                                     "certificate-authority-data": ca}}],
            "users": [{"name": "e2e", "user": {"token": token}}],
            "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "e2e"}}],
        }  # fmt: skip
        path.write_text(json.dumps(config))
        path.chmod(0o600)
        return path

    def _api_ready(self) -> bool:
        import ssl

        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        req = urllib.request.Request(f"{self.api_url}/readyz")
        req.add_header("Authorization", f"Bearer {self.admin_token}")
        with urllib.request.urlopen(req, timeout=2, context=ctx) as r:
            return bool(r.status == 200)

    # -- bring-up ----------------------------------------------------------------------------

    def _pki(self) -> None:
        pki = self.root / "pki"
        pki.mkdir()
        ca_key = _key()
        ca = _cert("e2e-ca", ca_key, None, ca=True)
        server_key = _key()
        server = _cert(
            "kube-apiserver", server_key, (ca, ca_key), ca=False, ips=("127.0.0.1",),
            dns=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
        )  # fmt: skip
        pem = serialization.Encoding.PEM
        self.ca_file.write_bytes(ca.public_bytes(pem))
        (pki / "apiserver.crt").write_bytes(server.public_bytes(pem))
        _write_key(server_key, pki / "apiserver.key")
        sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write_key(sa, pki / "sa.key")
        self.sa_public_key.write_bytes(
            sa.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        (pki / "tokens.csv").write_text(
            f'{self.admin_token},admin,admin,"system:masters"\n'
            f'{self.node_token},system:node:{NODE},node,"system:nodes"\n'
        )

    def _etcd(self) -> str:
        client, peer = free_port(), free_port()
        url = f"http://127.0.0.1:{client}"
        self.start("etcd", [
            "etcd", "--name=e2e", f"--data-dir={self.root / 'etcd'}",
            f"--listen-client-urls={url}", f"--advertise-client-urls={url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=e2e=http://127.0.0.1:{peer}", "--log-level=warn",
        ])  # fmt: skip
        wait_for("etcd", lambda: self.alive("etcd") and urllib.request.urlopen(
            f"{url}/health", timeout=1).status == 200, log=self.log("etcd"))  # fmt: skip
        return url

    def _apiserver(self, etcd: str) -> None:
        self.api_port = free_port()
        pki = self.root / "pki"
        self.start("kube-apiserver", [
            str(self.bin / "kube-apiserver"), f"--etcd-servers={etcd}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={self.api_port}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--token-auth-file={pki / 'tokens.csv'}",
            f"--service-account-issuer={ISSUER}",
            f"--service-account-key-file={self.sa_public_key}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--authorization-mode=Node,RBAC", "--endpoint-reconciler-type=none",
            "--service-cluster-ip-range=10.96.0.0/24", "--profiling=false",
            f"--cert-dir={pki}",
        ])  # fmt: skip
        wait_for("kube-apiserver", lambda: self.alive("kube-apiserver") and self._api_ready(),
                 timeout=90, log=self.log("kube-apiserver"))  # fmt: skip
        self.kubeconfig(self.root / "admin.kubeconfig", self.admin_token)
        wait_for("default ServiceAccount namespace", lambda: bool(self.get("namespace", "default")))

    def _containerd(self) -> None:
        base = self.root / "containerd"
        base.mkdir()
        config = base / "config.toml"
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        config.write_text(f"""version = 2
root = "{base / 'root'}"
state = "{base / 'state'}"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{self.containerd_sock}"
[ttrpc]
  address = "{base / 'ttrpc.sock'}"
[metrics]
  address = ""
[{cri}]
  sandbox_image = "{images.PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [{cri}.cni]
    bin_dir = "{base / 'cni-bin'}"
    conf_dir = "{base / 'cni-conf'}"
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
""")
        self.start("containerd", ["containerd", f"--config={config}"])
        wait_for("containerd", lambda: self.alive("containerd") and self.ctr("version") != "",
                 log=self.log("containerd"))  # fmt: skip
        tmp = self.root / "images"
        tmp.mkdir()
        for archive in (images.pause_image(self.bin / "pause", tmp / "pause.tar"),
                        images.busybox_image(tmp / "busybox.tar")):  # fmt: skip
            self.ctr("images", "import", str(archive))

    def ctr(self, *args: str) -> str:
        done = subprocess.run(
            ["ctr", f"--address={self.containerd_sock}", "-n", "k8s.io", *args],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        return done.stdout

    def _driver(self, rotation_poll: str) -> None:
        deploy = self.bin / "deploy"
        for name in ("secrets-store.csi.x-k8s.io_secretproviderclasses.yaml",
                     "secrets-store.csi.x-k8s.io_secretproviderclasspodstatuses.yaml",
                     "rbac-secretproviderclass.yaml",
                     "rbac-secretprovidersyncing.yaml"):  # fmt: skip
            self.kubectl("apply", "-f", str(deploy / name))
        # Our CSIDriver object: the tokenRequests every backend needs.
        self.kubectl("apply", "-f", str(REPO / "daemonset" / "driver" / "csidriver.yaml"))
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                     "crd/secretproviderclasses.secrets-store.csi.x-k8s.io",
                     "crd/secretproviderclasspodstatuses.secrets-store.csi.x-k8s.io")  # fmt: skip
        token = self.create_token("kube-system", "secrets-store-csi-driver", duration="24h")
        kubeconfig = self.kubeconfig(self.root / "driver.kubeconfig", token)
        plugin_dir = self.kubelet_dir / "plugins" / DRIVER
        plugin_dir.mkdir(parents=True)
        (self.kubelet_dir / "plugins_registry").mkdir(parents=True)
        self.providers_dir.mkdir()
        csi_sock = plugin_dir / "csi.sock"
        self.start("driver", [
            str(self.bin / "secrets-store-csi-driver"), f"--endpoint=unix://{csi_sock}",
            f"--nodeid={NODE}", f"--provider-volume={self.providers_dir}",
            f"--additional-provider-volume-paths={self.root / 'providers-extra'}",
            f"--metrics-addr=127.0.0.1:{free_port()}", "--enable-secret-rotation",
            f"--rotation-poll-interval={rotation_poll}", "-v=2",
        ], env={"KUBECONFIG": str(kubeconfig)})  # fmt: skip
        wait_for("driver socket", lambda: self.alive("driver") and csi_sock.exists(),
                 log=self.log("driver"))  # fmt: skip
        self.start("registrar", [
            str(self.bin / "registrar"), f"--csi-address={csi_sock}",
            f"--plugin-registration-path={self.kubelet_dir / 'plugins_registry'}",
        ])  # fmt: skip

    def _kubelet(self) -> None:
        config = self.root / "kubelet.yaml"
        config.write_text(json.dumps({
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "address": "127.0.0.1", "port": free_port(), "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1", "healthzPort": free_port(),
            "cgroupDriver": "cgroupfs", "failCgroupV1": False, "failSwapOn": False,
            "syncFrequency": "10s", "fileCheckFrequency": "10s",
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},
            "containerRuntimeEndpoint": f"unix://{self.containerd_sock}",
            "podLogsDir": str(self.pod_logs),
            "volumePluginDir": str(self.root / "volume-plugins"),
            "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%",
                             "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
            "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
            "registerNode": True, "resolvConf": "/etc/resolv.conf",
            "localStorageCapacityIsolation": False,
        }))  # fmt: skip
        kubeconfig = self.kubeconfig(self.root / "kubelet.kubeconfig", self.node_token)
        self.start("kubelet", [
            str(self.bin / "kubelet"), f"--config={config}", f"--kubeconfig={kubeconfig}",
            f"--root-dir={self.kubelet_dir}", f"--hostname-override={NODE}",
            f"--cert-dir={self.root / 'kubelet-pki'}", "-v=2",
        ])  # fmt: skip
        wait_for("the CSI driver registered with kubelet",
                 lambda: self.alive("kubelet") and DRIVER in json.dumps(
                     self.get("csinode", NODE).get("spec", {})),
                 timeout=90, log=self.log("kubelet"))  # fmt: skip

    def up(self, rotation_poll: str = "15s") -> None:
        (self.root / hostclean.BEFORE_FILE).write_text(json.dumps(hostclean.snapshot()))
        self._pki()
        self._apiserver(self._etcd())
        self._containerd()
        self._driver(rotation_poll)
        self._kubelet()
        self.kubectl("create", "namespace", "e2e-system")

    # -- pods ----------------------------------------------------------------------------------

    def pod_log(self, namespace: str, name: str, container: str) -> str:
        """The container's output, from kubelet's podLogsDir (CRI format, one line each)."""
        lines = []
        for path in sorted(self.pod_logs.glob(f"{namespace}_{name}_*/{container}/*.log")):
            for raw in path.read_text(errors="replace").splitlines():
                parts = raw.split(" ", 3)
                if len(parts) == 4:
                    lines.append(parts[3])
        return "\n".join(lines)

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get(
            "events", "-n", namespace, f"--field-selector=involvedObject.name={name}"
        )["items"]
        return items


@contextlib.contextmanager
def running_cluster(rotation_poll: str = "15s") -> Iterator[Cluster]:
    """Builds (or finds cached) binaries, brings the cluster up, always cleans up."""
    binaries = binaries_dir()
    root = Path(tempfile.mkdtemp(prefix=hostclean.ROOT_PREFIX, dir=hostclean.ROOT_PARENT))
    cluster = Cluster(root=root, bin=binaries)
    try:
        cluster.up(rotation_poll)
        yield cluster
    finally:
        hostclean.clean(root)
        for proc in cluster.procs.values():  # stopped by PID above: reap them
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
