"""Image test fixtures: the built image, a real OpenBao, the container as the chart runs it.

The image is the one ``make image`` just built (``POLYSECRET_IMAGE``, set by
the Makefile) or, when that variable is unset, one built here with
scripts/build-image.sh (cached: seconds when nothing changed). The tests
skip only when asked to with ``POLYSECRET_SKIP_IMAGE=1``; a machine without
podman fails them (scripts/install-image-deps.sh installs it).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conformance import backends
from tests.conformance.harness import build_binaries
from tests.image import chart_pod
from tests.support.openbao import OpenBao, TokenSigner, openbao_server
from tests.support.ports import free_port

HOST_SOCKET_DIR = "/var/run/secrets-store-csi-providers"  # the chart's hostPath
NODE = "node-a"


@pytest.fixture(scope="session")
def image() -> str:
    if os.environ.get("POLYSECRET_SKIP_IMAGE") == "1":
        pytest.skip("POLYSECRET_SKIP_IMAGE=1: image tests skipped on request")
    name = os.environ.get("POLYSECRET_IMAGE")
    if not name:
        name = "localhost/polysecret:test"
        subprocess.run(["bash", str(chart_pod.REPO / "scripts" / "build-image.sh"), name],
                       check=True, capture_output=True)  # fmt: skip
    chart_pod.run(["image", "exists", name])
    return name


@pytest.fixture(scope="session")
def image_uid(image: str) -> int:
    user = chart_pod.run(["image", "inspect", "--format", "{{.Config.User}}", image]).strip()
    return int(user.split(":")[0])


@pytest.fixture(scope="session")
def vault() -> Iterator[tuple[OpenBao, TokenSigner]]:
    signer = TokenSigner()
    with openbao_server() as bao:
        backends.seed_vault(bao, signer)
        yield bao, signer


@pytest.fixture(scope="session")
def driver_client() -> Path:
    """The driver's v1.6.0 client (tests/conformance/build.sh; a missing Go fails)."""
    return build_binaries()["v1.6"]


@dataclass
class Container:
    """The provider container, started from the chart's rendered pod spec."""

    name: str
    socket_dir: Path  # on the host
    health_port: int
    metrics_port: int
    run: chart_pod.PodRun

    @property
    def socket(self) -> Path:
        return self.socket_dir / "polysecret.sock"

    def get(self, port: int, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def logs(self) -> str:
        proc = subprocess.run([*chart_pod.podman(), "logs", self.name],
                              capture_output=True, text=True, check=True)  # fmt: skip
        return proc.stdout + proc.stderr

    def state(self) -> dict[str, object]:
        out = chart_pod.run(["inspect", "--format", "{{json .State}}", self.name])
        return dict(json.loads(out))

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*chart_pod.podman(), "exec", self.name, *command],
                              check=False, capture_output=True, text=True, timeout=30)  # fmt: skip

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.socket.is_socket():
                try:
                    if self.get(self.health_port, "/readyz")[0] == 200:
                        return
                except OSError:
                    pass
            if self.state().get("Status") != "running":
                raise AssertionError(f"container exited: {self.logs()}")
            time.sleep(0.2)
        raise AssertionError(f"container not ready in {timeout}s: {self.logs()}")


StartContainer = Callable[..., Container]


@pytest.fixture(scope="module")
def start_container(image: str, image_uid: int) -> Iterator[StartContainer]:
    """Start containers from the chart's DaemonSet (extra ``--set`` values as keywords)."""
    started: list[Container] = []
    dirs: list[Path] = []

    def start(owner: int = 0, **values: str) -> Container:
        # Short: a Unix socket path must fit in 108 bytes. Root-owned 0755, as the
        # driver creates it, unless the test gives it to another uid.
        host_dir = Path(tempfile.mkdtemp(prefix="psi-", dir="/tmp"))
        host_dir.chmod(0o755)
        os.chown(host_dir, owner, owner)
        dirs.append(host_dir)
        health, metrics = free_port(), free_port()
        daemonset = chart_pod.render_daemonset({
            "hostNetwork": "true", "health.port": str(health), "metrics.port": str(metrics),
            "provider.gracePeriod": "5", **values,
        })  # fmt: skip
        run = chart_pod.pod_run(daemonset, host_paths={HOST_SOCKET_DIR: host_dir}, node=NODE,
                                image_uid=image_uid)  # fmt: skip
        name = f"polysecret-test-{secrets.token_hex(4)}"
        chart_pod.run(["run", "--detach", "--name", name, *run.options, image, *run.args])
        container = Container(name, host_dir, health, metrics, run)
        started.append(container)
        container.wait_ready()
        return container

    try:
        yield start
    finally:
        for c in started:
            chart_pod.run(["rm", "--force", "--time", "0", c.name], check=False)
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
