"""The built image, run the way the chart's DaemonSet runs it, serving real mounts.

Why this exists: everything else tests the provider from a checkout; what
operators install is the image. Here the image ``make image`` built runs
under podman with the pod spec the chart renders (read-only root filesystem,
every capability dropped, no privilege escalation, the chart's user, the
socket directory bind-mounted from the host, host network for the probes),
and from the host the Secrets Store CSI Driver's own Go client (v1.6.0)
mounts a Vault SecretProviderClass through the socket against a real
OpenBao. Then the probes and metrics, SIGTERM removing the socket, a
non-root variant, and the image's size.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from tests.conformance import backends
from tests.conformance.mounts import go_mount
from tests.conformance.trees import read_tree
from tests.image import chart_pod
from tests.image.conftest import StartContainer
from tests.support.openbao import OpenBao, TokenSigner

# Measured 237 MiB (Debian bookworm minbase + python3 + every backend's SDK);
# a bound with headroom, so an accidental toolchain or cache in the image fails.
MAX_IMAGE_MIB = 300

MOUNT_OK = re.compile(
    r'^polysecret_mounts_total\{backend="vault",code="ok",result="success"\} (\S+)$', re.M
)


def _mount_and_check(
    container_socket_dir: Path, vault: tuple[OpenBao, TokenSigner], client: Path, target: Path
) -> backends.Scenario:
    scenario = backends.vault_scenario(*vault)
    result = go_mount(client, scenario, socket_dir=container_socket_dir, target=target)
    assert result.ok, result.error
    assert result.object_versions == scenario.versions
    assert read_tree(target).files == scenario.files
    return scenario


def test_driver_client_mounts_through_the_containers_socket(
    start_container: StartContainer,
    vault: tuple[OpenBao, TokenSigner],
    driver_client: Path,
    tmp_path: Path,
) -> None:
    container = start_container()
    # The provider made its socket in the host's directory, as root (the chart's default).
    assert container.socket.stat().st_uid == 0
    scenario = _mount_and_check(container.socket_dir, vault, driver_client, tmp_path / "t")

    status, body = container.get(container.health_port, "/healthz")
    assert status == 200, body
    status, metrics = container.get(container.metrics_port, "/metrics")
    assert status == 200
    counted = MOUNT_OK.search(metrics)
    assert counted and float(counted.group(1)) == 1.0, metrics[:2000]
    assert 'polysecret_build_info{version="0.1.0"} 1.0' in metrics

    logs = container.logs()
    assert '"msg": "started"' in logs or '"msg":"started"' in logs, logs[:2000]
    leaked = [s for s in scenario.never_shown() if s.decode() in logs + metrics]
    assert not leaked, "a secret or token reached the logs or metrics"


def test_process_is_confined_as_the_chart_says(start_container: StartContainer) -> None:
    """What the provider process really has: no capabilities, no-new-privs, the chart's uid."""
    container = start_container()
    status = container.exec("cat", "/proc/1/status")
    assert status.returncode == 0, status.stderr
    fields = dict(line.split(":", 1) for line in status.stdout.splitlines() if ":" in line)
    for cap in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
        assert int(fields[cap], 16) == 0, f"{cap} = {fields[cap].strip()}"
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Uid"].split()[0] == str(container.run.uid) == "0"
    assert fields["Seccomp"].strip() == "2"  # filter mode: the runtime's default profile

    # Read-only root filesystem; only /tmp (the chart's emptyDir) and the socket dir are writable.
    write = "import sys; open(sys.argv[1], 'w')"
    denied = container.exec("python3", "-c", write, "/opt/venv/probe")
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr, denied.stderr
    assert container.exec("python3", "-c", write, "/tmp/probe").returncode == 0
    # Root without CAP_DAC_OVERRIDE: a file another uid owns, mode 0600, stays closed to it.
    private = container.socket_dir / "private"
    private.write_text("not for the provider")
    os.chown(private, 65532, 65532)
    private.chmod(0o600)
    read = "import sys; open(sys.argv[1]).read()"
    denied = container.exec("python3", "-c", read, f"{container.run.socket_dir}/private")
    assert denied.returncode != 0 and "Permission denied" in denied.stderr, denied.stderr
    private.unlink()


def test_sigterm_removes_the_socket(start_container: StartContainer) -> None:
    container = start_container()
    assert container.socket.is_socket()
    started = time.monotonic()
    # podman stop sends the image's stop signal (SIGTERM), SIGKILL only after --time.
    chart_pod.run(["stop", "--time", "30", container.name])
    took = time.monotonic() - started
    state = container.state()
    assert state["ExitCode"] == 0, container.logs()[-2000:]
    assert took < 20, f"stop took {took:.1f}s: SIGTERM was not handled"
    assert not container.socket.exists()
    assert list(container.socket_dir.iterdir()) == []


def test_non_root_when_the_node_allows_it(
    start_container: StartContainer,
    vault: tuple[OpenBao, TokenSigner],
    driver_client: Path,
    tmp_path: Path,
) -> None:
    """The chart's documented non-root setting, on a socket directory owned by uid 65532."""
    container = start_container(
        owner=65532,
        **{"securityContext.runAsNonRoot": "true", "securityContext.runAsUser": "65532",
           "securityContext.runAsGroup": "65532"},
    )  # fmt: skip
    assert container.run.uid == 65532
    assert container.socket.stat().st_uid == 65532
    _mount_and_check(container.socket_dir, vault, driver_client, tmp_path / "t")


def test_image_size_stays_bounded(image: str, capsys: pytest.CaptureFixture[str]) -> None:
    size = int(chart_pod.run(["image", "inspect", "--format", "{{.Size}}", image]).strip())
    mib = size / (1 << 20)
    with capsys.disabled():  # the figure shows in every `make test` run
        print(f"\nimage {image}: {mib:.0f} MiB (bound {MAX_IMAGE_MIB} MiB)")
    assert mib < MAX_IMAGE_MIB
