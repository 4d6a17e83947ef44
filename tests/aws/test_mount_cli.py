"""`polysecret mount` end to end: a real subprocess, the running provider, the ..data layout."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.aws.conftest import STS_TOKEN
from tests.support.moto import ROLE_ARN
from tests.support.running import RunningProvider

pytestmark = pytest.mark.aws

ROOT = Path(__file__).resolve().parents[2]


def _spc(objects: str) -> str:
    indented = "\n".join("      " + line for line in objects.strip().splitlines())
    return f"""apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: app-secrets
spec:
  provider: polysecret
  parameters:
    roleArn: {ROLE_ARN}
    pathTranslation: "False"
    objects: |
{indented}
"""


def _mount(provider: RunningProvider, spc: Path, target: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "provider",
            "mount",
            str(spc),
            "--socket-dir",
            provider.settings.socket_dir,
            "--token",
            f"sts.amazonaws.com={STS_TOKEN}",
            "--service-account",
            "app",
            "--target",
            str(target),
            "--timeout",
            "30",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _tree(target: Path) -> dict[str, tuple[int, bytes]]:
    """What a reader of the volume sees, through the top-level symlinks."""
    out = {}
    for root, dirs, files in os.walk(target, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith("..")]
        for name in files:
            path = Path(root) / name
            out[str(path.relative_to(target))] = (
                stat.S_IMODE(path.stat().st_mode),
                path.read_bytes(),
            )
    return out


def test_mount_cli_layout_and_remount(provider: RunningProvider, sm: Any, tmp_path: Path) -> None:
    sm.create_secret(Name="db", SecretString='{"user": "u1"}')
    sm.create_secret(Name="api", SecretString="key-1")
    spc, target = tmp_path / "spc.yaml", tmp_path / "target"
    spc.write_text(
        _spc("""
- objectName: db
  objectType: secretsmanager
  objectAlias: conf/db.json
  filePermission: "0600"
  jmesPath: [{path: user, objectAlias: user}]
- {objectName: api, objectType: secretsmanager}
""")
    )
    done = _mount(provider, spc, target)
    assert done.returncode == 0, done.stderr
    assert "version  api = " in done.stdout
    assert STS_TOKEN not in done.stdout + done.stderr

    data = target / "..data"
    assert data.is_symlink()
    first_dir = os.readlink(data)
    assert first_dir.startswith("..") and (target / first_dir).is_dir()
    for top in ("conf", "user", "api"):
        assert os.readlink(target / top) == f"..data/{top}"
    assert _tree(target) == {
        "api": (0o644, b"key-1"),
        "conf/db.json": (0o600, b'{"user": "u1"}'),
        "user": (0o600, b"u1"),
    }

    # Rotation: the secret changes and an object leaves the class.
    sm.put_secret_value(SecretId="api", SecretString="key-2")
    spc.write_text(_spc("- {objectName: api, objectType: secretsmanager}"))
    done = _mount(provider, spc, target)
    assert done.returncode == 0, done.stderr
    assert _tree(target) == {"api": (0o644, b"key-2")}
    assert os.readlink(data) != first_dir
    assert not (target / first_dir).exists()
    assert sorted(p.name for p in target.iterdir()) == sorted(["..data", os.readlink(data), "api"])


def test_mount_cli_failure_leaves_old_content(
    provider: RunningProvider, sm: Any, tmp_path: Path
) -> None:
    sm.create_secret(Name="api", SecretString="key-1")
    spc, target = tmp_path / "spc.yaml", tmp_path / "target"
    spc.write_text(_spc("- {objectName: api, objectType: secretsmanager}"))
    assert _mount(provider, spc, target).returncode == 0
    spc.write_text(_spc("- {objectName: gone, objectType: secretsmanager}"))
    done = _mount(provider, spc, target)
    assert done.returncode == 1
    assert "NOT_FOUND" in done.stderr and "ObjectNotFound" in done.stderr
    assert _tree(target) == {"api": (0o644, b"key-1")}
