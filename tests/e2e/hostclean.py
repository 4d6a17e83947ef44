"""Undo every host change the e2e cluster makes, also after a crash.

kubelet and containerd change the host beyond their own directories: iptables
chains (KUBE-FIREWALL drops loopback traffic from other interfaces), cgroup
directories under /sys/fs/cgroup/*/kubepods, a bind mount of kubelet's root
onto itself, container rootfs and shm mounts, /run/containerd/{s,fifo,runc}
and /var/log/containers symlinks. Processes are stopped by the PIDs the
harness recorded (and, for containerd's shims and the containers, by the PIDs
found through our containerd socket), never by name.

It runs from the harness (teardown, atexit, signals) and standalone:

    python -m tests.e2e.hostclean            # clean every /tmp/pse2e-* cluster
    python -m tests.e2e.hostclean --check    # exit 1 if anything is left
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT_PREFIX = "pse2e-"
ROOT_PARENT = Path("/tmp")
PIDS_FILE = "pids.jsonl"
BEFORE_FILE = "host-before.json"
RUN_CONTAINERD = Path("/run/containerd")
RUN_CONTAINERD_ENTRIES = ("s", "fifo", "runc")
CONTAINER_LOGS = Path("/var/log/containers")
# kubelet's device-plugin manager ignores --root-dir: its socket is always here.
KUBELET_DEFAULT_ROOT = Path("/var/lib/kubelet")
DEVICE_PLUGIN_SOCKET = KUBELET_DEFAULT_ROOT / "device-plugins" / "kubelet.sock"
CGROUP_ROOT = Path("/sys/fs/cgroup")
CHAIN_PREFIX = "KUBE-"
TABLES = ("filter", "nat", "mangle")
IPTABLES = ("iptables", "ip6tables")


# -- what exists before the cluster starts ---------------------------------------


def snapshot() -> dict[str, object]:
    """The pre-existing state we must not remove (written next to the PIDs)."""
    return {
        "run_containerd": RUN_CONTAINERD.exists(),
        "run_containerd_entries": [
            e for e in RUN_CONTAINERD_ENTRIES if (RUN_CONTAINERD / e).exists()
        ],
        "container_logs_dir": CONTAINER_LOGS.exists(),
        "kubelet_default_root": KUBELET_DEFAULT_ROOT.exists(),
        "device_plugin_socket": DEVICE_PLUGIN_SOCKET.exists(),
        "chains": sorted(_chains()),
        "kubepods": sorted(str(p) for p in _kubepods()),
    }


# -- processes --------------------------------------------------------------------


def record_pid(root: Path, name: str, pid: int) -> None:
    """Remember a process we started, with its start time: a reused PID is not ours.

    (Not its command line: right after the fork it is still the parent's.)
    """
    with (root / PIDS_FILE).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"name": name, "pid": pid, "start": _start_time(pid)}) + "\n")


def _start_time(pid: int) -> str:
    """Clock ticks after boot at which the process started (/proc/PID/stat field 22)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _descendants(pid: int) -> list[int]:
    tree, out, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def stop_pids(pids: list[int], timeout: float = 10.0) -> None:
    """SIGTERM, wait, then SIGKILL what is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.05)
        if not any(_alive(p) for p in pids):
            return


def _recorded(root: Path) -> list[dict[str, object]]:
    path = root / PIDS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _ours(entry: dict[str, object]) -> bool:
    pid = int(str(entry["pid"]))
    return _alive(pid) and _start_time(pid) == entry["start"]


def shim_pids(root: Path) -> list[int]:
    """containerd's shims for our containerd (they outlive it) and their containers."""
    sock = str(root / "containerd" / "containerd.sock")
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        cmdline = _cmdline(int(entry.name)) if entry.name.isdigit() else ""
        if sock in cmdline.split("\0") and "containerd-shim" in cmdline:
            found.append(int(entry.name))
    out: list[int] = []
    for pid in found:
        out.extend(_descendants(pid))
        out.append(pid)
    return out


def stop_processes(root: Path) -> None:
    """Our processes, their children, the shims and containers: all at once.

    (One after the other, each with its own grace, a SIGTERM'd CI job could be
    killed before the host is clean.)
    """
    pids = shim_pids(root)
    for entry in _recorded(root):
        if _ours(entry):
            pid = int(str(entry["pid"]))
            pids += [*_descendants(pid), pid]
    stop_pids(sorted(set(pids)), timeout=5.0)


# -- mounts -----------------------------------------------------------------------


def _mounts() -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        points.append(point)
    return points


def our_mounts(root: Path) -> list[str]:
    prefixes = (str(root) + "/", str(RUN_CONTAINERD) + "/")
    return [p for p in _mounts() if p == str(root) or p.startswith(prefixes)]


def unmount(root: Path) -> None:
    # Deepest first; kubelet bind-mounts its root onto itself, so repeat until none.
    for _ in range(10):
        points = sorted(set(our_mounts(root)), key=len, reverse=True)
        if not points:
            return
        for point in points:
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)


# -- cgroups ----------------------------------------------------------------------


def _kubepods() -> list[Path]:
    if not CGROUP_ROOT.is_dir():
        return []
    return [d / "kubepods" for d in CGROUP_ROOT.iterdir() if (d / "kubepods").is_dir()]


def remove_cgroups(keep: list[str]) -> None:
    for top in _kubepods():
        if str(top) in keep:
            continue
        # A cgroup directory is removed with rmdir, leaves first.
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


# -- iptables ---------------------------------------------------------------------


def _run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool, "-w", *args], capture_output=True, text=True, check=False)


def _chains() -> set[str]:
    """{"iptables filter KUBE-FIREWALL", ...}: every KUBE- chain there is."""
    found = set()
    for tool in IPTABLES:
        if shutil.which(tool) is None:
            continue
        for table in TABLES:
            out = _run(tool, "-t", table, "-S")
            for line in out.stdout.splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[0] == "-N" and parts[1].startswith(CHAIN_PREFIX):
                    found.add(f"{tool} {table} {parts[1]}")
    return found


def remove_chains(keep: list[str]) -> None:
    for chain in sorted(_chains() - set(keep)):
        tool, table, name = chain.split()
        rules = _run(tool, "-t", table, "-S")
        # Rules elsewhere that jump to the chain go first, then the chain itself.
        for line in rules.stdout.splitlines():
            parts = line.split()
            if parts[:1] == ["-A"] and name in parts[2:] and parts[1] != name:
                _run(tool, "-t", table, "-D", *parts[1:])
        _run(tool, "-t", table, "-F", name)
        _run(tool, "-t", table, "-X", name)


# -- files --------------------------------------------------------------------------


def remove_files(root: Path, before: dict[str, object]) -> None:
    if CONTAINER_LOGS.is_dir():
        for link in CONTAINER_LOGS.iterdir():
            if link.is_symlink() and os.readlink(link).startswith(str(root)):
                link.unlink()
        if not before.get("container_logs_dir", True):
            with contextlib.suppress(OSError):
                CONTAINER_LOGS.rmdir()
    if not before.get("device_plugin_socket", False):
        remove_device_plugin_socket(keep_root=bool(before.get("kubelet_default_root", False)))
    if not before.get("run_containerd", True):
        shutil.rmtree(RUN_CONTAINERD, ignore_errors=True)
    else:
        kept = before.get("run_containerd_entries", list(RUN_CONTAINERD_ENTRIES))
        for entry in RUN_CONTAINERD_ENTRIES:
            if entry not in kept:  # type: ignore[operator]
                shutil.rmtree(RUN_CONTAINERD / entry, ignore_errors=True)


def remove_device_plugin_socket(*, keep_root: bool) -> None:
    """The socket, and the directories kubelet made for it when they are left empty."""
    if DEVICE_PLUGIN_SOCKET.is_socket():
        DEVICE_PLUGIN_SOCKET.unlink()
    if not keep_root:
        for directory in (DEVICE_PLUGIN_SOCKET.parent, KUBELET_DEFAULT_ROOT):
            with contextlib.suppress(OSError):
                directory.rmdir()  # only when empty: nothing of anyone else's goes


def clean(root: Path) -> None:
    """Everything, in an order that works: processes, mounts, then the rest."""
    before_path = root / BEFORE_FILE
    before: dict[str, object] = {}
    if before_path.exists():
        before = json.loads(before_path.read_text())
    stop_processes(root)
    unmount(root)
    remove_cgroups(list(before.get("kubepods", [])))  # type: ignore[call-overload]
    remove_chains(list(before.get("chains", [])))  # type: ignore[call-overload]
    remove_files(root, before)
    shutil.rmtree(root, ignore_errors=True)


def leftovers(root: Path | None = None) -> list[str]:
    """What a finished run must not leave; empty when the host is clean."""
    roots = [root] if root else sorted(ROOT_PARENT.glob(ROOT_PREFIX + "*"))
    found: list[str] = []
    for r in roots:
        found += [f"process {e['name']} ({e['pid']})" for e in _recorded(r) if _ours(e)]
        found += [f"shim or container process {p}" for p in shim_pids(r)]
        found += [f"mount {p}" for p in our_mounts(r)]
        if r.exists():
            found.append(f"directory {r}")
    found += [f"cgroup {p}" for p in _kubepods()]
    found += [f"iptables chain {c}" for c in sorted(_chains())]
    if DEVICE_PLUGIN_SOCKET.exists():
        found.append(str(DEVICE_PLUGIN_SOCKET))
    found += [str(RUN_CONTAINERD / e) for e in RUN_CONTAINERD_ENTRIES
              if (RUN_CONTAINERD / e).exists()]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report what is left")
    parser.add_argument("roots", nargs="*", type=Path, help="cluster roots (default: all)")
    args = parser.parse_args()
    roots = args.roots or sorted(ROOT_PARENT.glob(ROOT_PREFIX + "*"))
    if not args.check:
        for root in roots:
            clean(root)
        # A run killed before it wrote its snapshot: no chain or cgroup of kubelet's is kept.
        remove_cgroups([])
        remove_chains([])
        remove_device_plugin_socket(keep_root=False)
    left = leftovers()
    for item in left:
        print(f"left on the host: {item}", file=sys.stderr)
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
