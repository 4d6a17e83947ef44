"""Every backend mounted through the Secrets Store CSI Driver's real Go client.

Why this exists: our provider's unit and backend tests check our reading of
the driver contract; these check the driver itself. For aws (moto), vault
(OpenBao) and azure (the HTTPS Key Vault stand-in), and for both driver lines
(v1.6.0 and v1.5.x), an example SecretProviderClass is mounted through the
Go harness (the driver's PluginClientBuilder, MountContent and atomic
writer) and the volume it writes must equal, file for file, mode for mode,
what our own ``python -m provider mount`` writes; both must also equal the
values seeded in the backend, and the object versions must be the backend's
real ones. Then a rotation, the v1.5.x rotation reconciler, and a denied and
a missing object, with the exact text the pod's event would show.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conformance import backends
from tests.conformance.conftest import Backend
from tests.conformance.mounts import cli_mount, go_mount
from tests.conformance.trees import assert_same_tree, read_tree

pytestmark = pytest.mark.conformance

BACKENDS = [pytest.param(name, id=name) for name in ("aws", "vault", "azure")]
LINES = [pytest.param(line, id=line) for line in ("v1.6", "v1.5")]

PUBLISH_PREFIX = (
    f"failed to mount secrets store objects for pod {backends.NAMESPACE}/{backends.POD_NAME}, "
    "err: rpc error: "
)
ROTATE_PREFIX = "provider mount err: rpc error: "


def test_binaries_link_both_driver_lines(binaries: dict[str, Path]) -> None:
    """The two harness binaries really are the driver's v1.6.0 and v1.5.x clients."""
    versions = {
        line: subprocess.run(
            [str(path), "--driver-version"], capture_output=True, text=True, check=True
        ).stdout.strip()
        for line, path in binaries.items()
    }
    assert versions["v1.6"] == "v1.6.0"
    assert versions["v1.5"].startswith("v1.5.")


def _assert_known(target: Path, scenario: backends.Scenario) -> None:
    """The volume holds exactly the seeded values with the SPC's modes."""
    tree = read_tree(target)
    assert tree.files == scenario.files
    assert tree.top_level == {p.split("/", 1)[0] for p in scenario.files}


@pytest.mark.parametrize("line", LINES)
@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_driver_writes_what_our_mount_cli_writes(
    backend: Backend,
    scenario: backends.Scenario,
    binaries: dict[str, Path],
    line: str,
    tmp_path: Path,
) -> None:
    driver_target, cli_target = tmp_path / "driver", tmp_path / "cli"
    result = go_mount(binaries[line], scenario, socket_dir=backend.socket_dir, target=driver_target)
    assert result.ok, result.error
    assert result.object_versions == scenario.versions

    cli_versions = cli_mount(
        scenario,
        socket_dir=backend.socket_dir,
        target=cli_target,
        spc_file=tmp_path / "spc.yaml",
        driver_line=line,
    )
    assert cli_versions == scenario.versions

    assert_same_tree(read_tree(cli_target), read_tree(driver_target))
    # Equal is not enough: both must hold what the backend holds.
    _assert_known(driver_target, scenario)
    _assert_known(cli_target, scenario)


@pytest.mark.parametrize("line", LINES)
@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_rotation_switches_the_volume(
    backend: Backend,
    scenario: backends.Scenario,
    binaries: dict[str, Path],
    line: str,
    tmp_path: Path,
) -> None:
    """A re-mount into the same target (v1.6.0's rotation; v1.5.x's NodePublishVolume)."""
    target = tmp_path / "volume"
    first = go_mount(binaries[line], scenario, socket_dir=backend.socket_dir, target=target)
    assert first.ok, first.error
    before = read_tree(target)

    files, versions = scenario.rotate()
    second = go_mount(binaries[line], scenario, socket_dir=backend.socket_dir, target=target)
    assert second.ok, second.error
    assert second.object_versions == versions
    assert second.object_versions != first.object_versions
    _assert_rotated(target, before.data_dir, files)


def _assert_rotated(target: Path, old_data_dir: str, files: backends.Files) -> None:
    after = read_tree(target)
    assert after.files == files
    assert after.data_dir != old_data_dir
    assert not (target / old_data_dir).exists()
    assert os.readlink(target / "..data") == after.data_dir
    # What a pod reads through the top-level links is the new content.
    for rel, (_, data) in files.items():
        assert (target / rel).read_bytes() == data
    assert sorted(os.listdir(target)) == sorted(["..data", after.data_dir, *after.top_level])


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_v15_rotation_reconciler(
    backend: Backend, scenario: backends.Scenario, binaries: dict[str, Path], tmp_path: Path
) -> None:
    """v1.5.x's reconciler: attributes without volumeAttributes, secrets {}, last versions."""
    target = tmp_path / "volume"
    first = go_mount(binaries["v1.5"], scenario, socket_dir=backend.socket_dir, target=target)
    assert first.ok, first.error
    before = read_tree(target)

    # Nothing changed: same versions, and the driver's atomic writer leaves an
    # unchanged payload alone (same ..data directory, same files).
    same = go_mount(
        binaries["v1.5"], scenario, socket_dir=backend.socket_dir, target=target,
        current_versions=first.object_versions,
    )  # fmt: skip
    assert same.ok, same.error
    assert same.object_versions == scenario.versions
    middle = read_tree(target)
    assert middle == before

    files, versions = scenario.rotate()
    rotated = go_mount(
        binaries["v1.5"], scenario, socket_dir=backend.socket_dir, target=target,
        current_versions=same.object_versions,
    )  # fmt: skip
    assert rotated.ok, rotated.error
    assert rotated.object_versions == versions
    assert rotated.object_versions != same.object_versions
    _assert_rotated(target, middle.data_dir, files)


PATHS = [
    pytest.param("v1.6", "first-mount", id="v1.6-first-mount"),
    pytest.param("v1.6", "remount", id="v1.6-remount"),
    pytest.param("v1.5", "first-mount", id="v1.5-first-mount"),
    pytest.param("v1.5", "reconciler", id="v1.5-reconciler"),
]


@pytest.mark.parametrize(("line", "path"), PATHS)
@pytest.mark.parametrize("kind", ["denied", "missing"])
@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_failing_object_fails_the_mount(
    backend: Backend,
    scenario: backends.Scenario,
    *,
    binaries: dict[str, Path],
    kind: str,
    line: str,
    path: str,
    tmp_path: Path,
) -> None:
    """First mount: nothing is written. Re-mount / reconciler: the old volume stays."""
    failing: backends.Failing = getattr(scenario, kind)
    target = tmp_path / "volume"
    binary = binaries[line]
    before = None
    current = None
    if path != "first-mount":
        good = go_mount(binary, scenario, socket_dir=backend.socket_dir, target=target)
        assert good.ok, good.error
        before = read_tree(target)
        current = good.object_versions if path == "reconciler" else None

    result = go_mount(
        binary, scenario, socket_dir=backend.socket_dir, target=target,
        spc_yaml=failing.spc_yaml, current_versions=current,
    )  # fmt: skip
    assert not result.ok
    assert result.object_versions == {}
    prefix = ROTATE_PREFIX if path == "reconciler" else PUBLISH_PREFIX
    assert result.error == prefix + failing.grpc_text, result.error
    assert f"object '{failing.object_name}'" in result.error
    for value in scenario.never_shown():
        assert value.decode() not in result.error

    if before is None:
        assert os.listdir(target) == []
    else:
        after = read_tree(target)
        assert after == before
