"""Writes a Mount answer into a directory the way the driver does.

Kubelet-style atomic layout: the files go into a fresh ``..<timestamp>``
directory, the ``..data`` symlink is switched to it with one rename, and every
top-level entry is a symlink through ``..data``. A reader therefore sees the
old set or the new set, never a mix. Used by ``polysecret mount`` (the demo,
debugging) and the tests; the driver has its own copy in Go, whose behaviour
this follows where a user could tell the difference: an unchanged payload
leaves the volume untouched (same ``..data`` directory), and only the
permission bits of a mode are applied.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from provider.paths import check_paths

DATA_LINK = "..data"


@dataclass(frozen=True)
class PayloadFile:
    path: str
    mode: int
    contents: bytes = field(repr=False)


def _unchanged(old_dir: Path, files: Sequence[PayloadFile]) -> bool:
    """True when ``old_dir`` already holds exactly these contents (modes aside, as the driver)."""
    wanted: set[str] = set()
    for f in files:
        parts = f.path.split("/")
        wanted.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
        try:
            if (old_dir / f.path).read_bytes() != f.contents:
                return False
        except OSError:
            return False
    present = {str(p.relative_to(old_dir)) for p in old_dir.rglob("*")}
    return present <= wanted


def write_payload(target: Path, files: Sequence[PayloadFile]) -> bool:
    """Atomically replace the content of ``target`` with ``files``.

    Returns False (and writes nothing) when the volume already holds them.
    """
    check_paths([(f.path, f.path) for f in files])
    target.mkdir(parents=True, exist_ok=True)
    data_link = target / DATA_LINK
    old_dir: Path | None = None
    if data_link.is_symlink():
        old_dir = target / os.readlink(data_link)
        if _unchanged(old_dir, files):
            return False
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()) + str(time.time_ns() % 10**9)
    new_dir = target / stamp
    new_dir.mkdir(mode=0o755)
    for f in files:
        dest = new_dir / f.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "wb") as fh:
            fh.write(f.contents)
        # chmod, not the umask: the mode must be exactly what was asked for.
        # Permission bits only, as the driver's Go chmod does: a mode with the
        # setuid bit must never make a setuid file.
        os.chmod(dest, f.mode & 0o777)

    tmp_link = target / (DATA_LINK + "_tmp")
    if tmp_link.is_symlink() or tmp_link.exists():
        tmp_link.unlink()
    os.symlink(stamp, tmp_link)
    os.replace(tmp_link, data_link)

    wanted = {f.path.split("/", 1)[0] for f in files}
    for name in wanted:
        link = target / name
        if not link.is_symlink():
            os.symlink(os.path.join(DATA_LINK, name), link)
    for entry in target.iterdir():
        if entry.name.startswith(".."):
            continue
        if entry.is_symlink() and entry.name not in wanted:
            entry.unlink()
    if old_dir is not None and old_dir.name != stamp and old_dir.exists():
        # Here, not at the top: `serve` imports this module (for the `mount`
        # command's parser) and shutil brings bz2 and lzma, 0.5 MiB of idle RSS.
        import shutil

        shutil.rmtree(old_dir)
    return True
