"""Mount one SecretProviderClass two ways: through the driver's Go client, and through
our own ``python -m provider mount`` run as a subprocess.

Both are given the same SPC YAML file and the same pod; the conformance tests
then compare what each wrote. The Go side gets the attributes the driver
builds (harness.publish_attributes / rotation_attributes) from the SPC's
``spec.parameters``, not from our provider's code.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from provider.spc import load_spc
from tests.conformance import backends
from tests.conformance.harness import (
    DriverResult,
    driver_mount,
    publish_attributes,
    rotation_attributes,
)

ROOT = Path(__file__).resolve().parents[2]
PROVIDER = "polysecret"


def tokens_json(tokens: dict[str, str]) -> str:
    """``csi.storage.k8s.io/serviceAccount.tokens`` as kubelet writes it."""
    return json.dumps(
        {
            aud: {"token": t, "expirationTimestamp": "2099-01-01T00:00:00Z"}
            for aud, t in tokens.items()
        }
    )


def go_mount(
    binary: Path,
    scenario: backends.Scenario,
    *,
    socket_dir: Path,
    target: Path,
    spc_yaml: str | None = None,
    current_versions: dict[str, str] | None = None,
) -> DriverResult:
    """NodePublishVolume (or, with ``current_versions``, the v1.5.x rotation reconciler)."""
    spc = load_spc(spc_yaml or scenario.spc_yaml)
    pod_name, namespace, uid = backends.POD_NAME, backends.NAMESPACE, backends.POD_UID
    tokens = tokens_json(scenario.tokens)
    if current_versions is None:
        attributes = publish_attributes(
            spc.parameters,
            volume_attributes={"secretProviderClass": spc.name},
            pod_name=pod_name,
            pod_namespace=namespace,
            pod_uid=uid,
            service_account=backends.SERVICE_ACCOUNT,
            tokens=tokens,
        )
    else:
        attributes = rotation_attributes(
            spc.parameters,
            pod_name=pod_name,
            pod_namespace=namespace,
            pod_uid=uid,
            service_account=backends.SERVICE_ACCOUNT,
            tokens=tokens,
        )
    return driver_mount(
        binary,
        socket_dir=socket_dir,
        provider=PROVIDER,
        target=target,
        attributes=attributes,
        secrets=None,
        current_versions=current_versions,
    )


_VERSION_LINE = re.compile(r"^version  (\S+) = (\S+)$", re.MULTILINE)


def cli_mount(
    scenario: backends.Scenario,
    *,
    socket_dir: Path,
    target: Path,
    spc_file: Path,
    driver_line: str,
) -> dict[str, str]:
    """``python -m provider mount``; returns the versions it printed. Fails on an error."""
    spc_file.write_text(scenario.spc_yaml)
    args = [
        sys.executable, "-m", "provider", "mount", str(spc_file),
        "--target", str(target),
        "--socket-dir", str(socket_dir),
        "--provider", PROVIDER,
        "--pod-name", backends.POD_NAME,
        "--namespace", backends.NAMESPACE,
        "--pod-uid", backends.POD_UID,
        "--service-account", backends.SERVICE_ACCOUNT,
        "--driver-line", driver_line,
        "--timeout", "60",
    ]  # fmt: skip
    for audience, token in scenario.tokens.items():
        args += ["--token", f"{audience}={token}"]
    done = subprocess.run(
        args,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=90,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if done.returncode != 0:
        raise AssertionError(f"python -m provider mount failed ({done.returncode}): {done.stderr}")
    return dict(_VERSION_LINE.findall(done.stdout))
