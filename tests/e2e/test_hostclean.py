"""The teardown's own check: a leftover process, mount or KUBE- chain is seen, then removed.

``make e2e`` fails when hostclean.leftovers() finds anything after the suite;
these tests show that check is not blind, on a fake cluster root.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import hostclean

CHAIN = "KUBE-PSE2E-SELFTEST"


def of_root(root: Path) -> list[str]:
    """The leftovers of this root (cgroups and chains are the host's: a session's kubelet)."""
    return [x for x in hostclean.leftovers(root) if str(root) in x or x.startswith("process")]


@pytest.fixture
def fake_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix=hostclean.ROOT_PREFIX, dir=hostclean.ROOT_PARENT))
    (root / hostclean.BEFORE_FILE).write_text(json.dumps(hostclean.snapshot()))
    yield root
    hostclean.clean(root)


def test_a_recorded_process_and_a_mount_are_leftovers_until_cleaned(fake_root: Path) -> None:
    proc = subprocess.Popen(["sleep", "300"], start_new_session=True)
    hostclean.record_pid(fake_root, "sleeper", proc.pid)
    mount = fake_root / "kubelet" / "pods" / "x" / "mount"
    mount.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(mount)], check=True)

    left = of_root(fake_root)
    assert f"process sleeper ({proc.pid})" in left
    assert f"mount {mount}" in left

    hostclean.clean(fake_root)
    assert proc.wait(10) == -15  # SIGTERM, by its recorded PID
    assert of_root(fake_root) == []
    assert not fake_root.exists()


def test_a_recorded_pid_reused_by_another_process_is_not_killed(fake_root: Path) -> None:
    proc = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        with (fake_root / hostclean.PIDS_FILE).open("w") as fh:
            # Same PID, another start time: not the process we started.
            fh.write(json.dumps({"name": "reused", "pid": proc.pid, "start": "1"}) + "\n")
        assert of_root(fake_root) == [f"directory {fake_root}"]
        hostclean.clean(fake_root)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait(10)


def test_a_kube_chain_is_a_leftover_until_cleaned() -> None:
    others = sorted(hostclean._chains())  # the session's kubelet's own, kept here
    subprocess.run(["iptables", "-w", "-t", "filter", "-N", CHAIN], check=True)
    subprocess.run(["iptables", "-w", "-t", "filter", "-A", "OUTPUT", "-j", CHAIN], check=True)
    try:
        assert f"iptables chain iptables filter {CHAIN}" in hostclean.leftovers()
        hostclean.remove_chains(others)
        assert f"iptables filter {CHAIN}" not in hostclean._chains()
        rules = subprocess.run(["iptables", "-w", "-S", "OUTPUT"], capture_output=True,
                               text=True, check=True).stdout  # fmt: skip
        assert CHAIN not in rules
        assert sorted(hostclean._chains()) == others
    finally:
        subprocess.run(["iptables", "-w", "-D", "OUTPUT", "-j", CHAIN], capture_output=True,
                       check=False)  # fmt: skip
        subprocess.run(["iptables", "-w", "-X", CHAIN], capture_output=True, check=False)
