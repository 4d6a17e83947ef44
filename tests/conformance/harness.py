"""Mount through the Secrets Store CSI Driver's own client, from Python tests.

Why this exists: our reading of the driver can be wrong, and the driver
cannot run here (no Kubernetes). So the conformance tests drive our provider
with a small Go program (``main.go`` beside this file) that links the
driver's real code, ``sigs.k8s.io/secrets-store-csi-driver`` at v1.6.0 and at
the newest v1.5.x, and does what the driver's node server does: marshal the
attributes and secrets, call Mount through ``PluginClientBuilder`` and
``MountContent``, and write the files with the driver's atomic writer. A
provider that passes here passes the driver's own checks, byte for byte.

The two driver lines differ on the wire in ways the Go program reproduces
(it knows which driver it was built with):

- ``:authority`` is ``localhost`` on v1.6.0 and the socket path on v1.5.x;
- ``secrets`` is the JSON text ``null`` when the pod has no
  nodePublishSecretRef on the mount path of both lines; only v1.5.x's rotation
  reconciler (selected by passing ``current_versions``) sends ``{}``, and it
  is also the only caller that sends ``current_object_version``.

Typical use::

    bins = build_binaries()
    result = driver_mount(bins["v1.6"], socket_dir=d, provider="polysecret",
                          target=t, attributes=publish_attributes(...),
                          secrets=None)
    assert result.ok, result.error
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Attribute keys kubelet (podInfoOnMount, tokenRequests) and the driver set.
POD_NAME = "csi.storage.k8s.io/pod.name"
POD_NAMESPACE = "csi.storage.k8s.io/pod.namespace"
POD_UID = "csi.storage.k8s.io/pod.uid"
SERVICE_ACCOUNT_NAME = "csi.storage.k8s.io/serviceAccount.name"
SERVICE_ACCOUNT_TOKENS = "csi.storage.k8s.io/serviceAccount.tokens"
EPHEMERAL = "csi.storage.k8s.io/ephemeral"


class HarnessError(RuntimeError):
    """The harness itself failed (build, usage, bad input): not a mount result."""


@dataclass(frozen=True)
class DriverResult:
    """What the driver made of one Mount.

    ``ok`` is the driver's verdict. On success ``object_versions`` is what it
    would record in the SecretProviderClassPodStatus; on failure ``error`` is
    the text it reports to the pod (the FailedMount event on the mount path,
    the MountRotationFailed event on the v1.5.x rotation path).
    """

    ok: bool
    object_versions: dict[str, str]
    error: str


def output_dir() -> Path:
    """Where build.sh puts the binaries: a cache outside the repo."""
    cache = os.environ.get("POLYSECRET_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "polysecret"
    )
    return Path(cache) / "conformance"


@functools.cache
def build_binaries() -> dict[str, Path]:
    """Build (or relink from Go's caches) both harness binaries, once per process.

    Returns ``{"v1.6": path, "v1.5": path}``. Raises HarnessError with the
    build output when Go or the modules are not available.
    """
    out = output_dir()
    proc = subprocess.run(
        ["bash", str(HERE / "build.sh"), str(out)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise HarnessError(f"tests/conformance/build.sh failed:\n{proc.stdout}{proc.stderr}")
    return {"v1.6": out / "conformance-v1.6", "v1.5": out / "conformance-v1.5"}


def publish_attributes(
    parameters: Mapping[str, str],
    *,
    volume_attributes: Mapping[str, str],
    pod_name: str,
    pod_namespace: str,
    pod_uid: str,
    service_account: str,
    tokens: str | None = None,
    ephemeral: bool = True,
) -> dict[str, str]:
    """The attributes of NodePublishVolume (both driver lines).

    The driver starts from the SecretProviderClass parameters and copies the
    volume context over them: the pod's volumeAttributes (which include
    ``secretProviderClass``), then what kubelet adds with podInfoOnMount and,
    when the CSIDriver has tokenRequests, the tokens JSON.
    """
    attributes = rotation_attributes(
        {**parameters, **volume_attributes},
        pod_name=pod_name,
        pod_namespace=pod_namespace,
        pod_uid=pod_uid,
        service_account=service_account,
        tokens=tokens,
    )
    attributes[EPHEMERAL] = "true" if ephemeral else "false"
    return attributes


def rotation_attributes(
    parameters: Mapping[str, str],
    *,
    pod_name: str,
    pod_namespace: str,
    pod_uid: str,
    service_account: str,
    tokens: str | None = None,
) -> dict[str, str]:
    """The attributes of the v1.5.x rotation reconciler.

    It rebuilds them from the SecretProviderClass and the Pod object: no
    volumeAttributes (so no ``secretProviderClass``, no ``ephemeral``), and
    tokens that the driver requested itself.
    """
    attributes = dict(parameters)
    attributes.update(
        {
            POD_NAME: pod_name,
            POD_NAMESPACE: pod_namespace,
            POD_UID: pod_uid,
            SERVICE_ACCOUNT_NAME: service_account,
        }
    )
    if tokens:
        attributes[SERVICE_ACCOUNT_TOKENS] = tokens
    return attributes


def driver_mount(
    binary: Path,
    *,
    socket_dir: Path,
    provider: str,
    target: Path,
    attributes: dict[str, str],
    secrets: dict[str, str] | None,
    permission: str = "420",
    current_versions: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> DriverResult:
    """Mount ``target`` from the provider at ``socket_dir/<provider>.sock``.

    ``secrets`` None means the pod has no nodePublishSecretRef (the Go side
    turns that into what each driver path really sends). ``current_versions``
    selects the v1.5.x rotation reconciler; the v1.6 binary refuses it
    (HarnessError), as v1.6.0 never sends versions. ``timeout`` is the Mount
    call's deadline in seconds (kubelet allows 120).
    """
    with tempfile.TemporaryDirectory(prefix="conformance-") as tmp:
        # The files carry tokens and secrets: TemporaryDirectory is 0700.
        inputs = Path(tmp)
        (inputs / "attributes.json").write_text(json.dumps(attributes))
        (inputs / "secrets.json").write_text(json.dumps(secrets))
        args = [
            str(binary),
            "--socket-dir", str(socket_dir),
            "--provider", provider,
            "--target", str(target),
            "--attributes-file", str(inputs / "attributes.json"),
            "--secrets-file", str(inputs / "secrets.json"),
            "--permission", permission,
            "--timeout", f"{timeout}s",
        ]  # fmt: skip
        if current_versions is not None:
            (inputs / "current.json").write_text(json.dumps(current_versions))
            args += ["--current-versions", str(inputs / "current.json")]
        try:
            proc = subprocess.run(
                args,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout + 30,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise HarnessError(f"{binary.name} did not finish in {timeout + 30}s") from exc

    if proc.returncode == 0:
        versions: dict[str, str] = json.loads(proc.stdout)["object_versions"]
        return DriverResult(ok=True, object_versions=versions, error="")
    if proc.returncode == 1:
        return DriverResult(ok=False, object_versions={}, error=proc.stderr.rstrip("\n"))
    raise HarnessError(f"{binary.name} exited {proc.returncode}: {proc.stderr.strip()}")
