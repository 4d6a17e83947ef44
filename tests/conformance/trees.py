"""Read a mounted volume the way a pod does, and compare two of them.

Both the driver's Go writer and our ``provider/writer.py`` lay a volume out
kubelet-style: real files in ``<target>/..<timestamp>/``, ``..data`` a
symlink to that directory, and every top-level entry a symlink
``<name> -> ..data/<name>``. ``read_tree`` checks that layout strictly (a
writer that puts a real file at the top, leaves a stale ``..`` directory
behind or points a link elsewhere is reported) and returns what a reader of
the volume sees through ``..data``: relative path -> (mode, bytes) of every
real file. ``tree_differences`` names every way two trees differ, so a test
can show exactly what a broken provider would change.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

DATA_LINK = "..data"


class LayoutError(AssertionError):
    """The target is not in the atomic-writer layout."""


@dataclass(frozen=True)
class Tree:
    """A mounted volume as a pod sees it."""

    files: dict[str, tuple[int, bytes]]  # relative path -> (permission bits, contents)
    top_level: frozenset[str]  # the symlinks at the top of the target
    data_dir: str  # what ..data points to (a ..<timestamp> directory)


def read_tree(target: Path) -> Tree:
    """The files under ``target`` via ``..data``; raises LayoutError on a bad layout."""
    data_link = target / DATA_LINK
    if not data_link.is_symlink():
        raise LayoutError(f"{data_link} is not a symlink")
    data_dir = os.readlink(data_link)
    if "/" in data_dir or not data_dir.startswith("..") or data_dir == DATA_LINK:
        raise LayoutError(f"..data points to {data_dir!r}, not a ..<timestamp> sibling")
    real = target / data_dir
    if real.is_symlink() or not real.is_dir():
        raise LayoutError(f"..data points to {data_dir!r}, which is not a directory")

    top_level: set[str] = set()
    with os.scandir(target) as entries:
        listed = list(entries)
    for entry in listed:
        if entry.name in (DATA_LINK, data_dir):
            continue
        if entry.name.startswith(".."):
            raise LayoutError(f"stray writer entry {entry.name!r} in the target")
        if not entry.is_symlink():
            raise LayoutError(f"top-level entry {entry.name!r} is not a symlink")
        link = os.readlink(entry.path)
        if link != f"{DATA_LINK}/{entry.name}":
            raise LayoutError(f"top-level {entry.name!r} points to {link!r}, not into ..data")
        top_level.add(entry.name)

    files: dict[str, tuple[int, bytes]] = {}
    view = target / DATA_LINK
    for root, dirs, names in os.walk(view):
        for name in dirs + names:
            path = Path(root) / name
            if path.is_symlink():
                raise LayoutError(f"{path.relative_to(view)} inside ..data is a symlink")
        for name in names:
            path = Path(root) / name
            st = path.lstat()
            if not stat.S_ISREG(st.st_mode):
                raise LayoutError(f"{path.relative_to(view)} is not a regular file")
            files[path.relative_to(view).as_posix()] = (
                stat.S_IMODE(st.st_mode),
                path.read_bytes(),
            )
    heads = {p.split("/", 1)[0] for p in files}
    if heads != top_level:
        raise LayoutError(
            f"top-level symlinks {sorted(top_level)} do not match the content {sorted(heads)}"
        )
    # Through the top-level links the pod sees the same bytes.
    for rel, (_, data) in files.items():
        if (target / rel).read_bytes() != data:
            raise LayoutError(f"{rel}: the top-level view differs from ..data")
    return Tree(files=files, top_level=frozenset(top_level), data_dir=data_dir)


def _describe(value: tuple[int, bytes]) -> str:
    mode, data = value
    return f"mode {mode:04o}, {len(data)} bytes"


def tree_differences(expected: Tree, actual: Tree) -> list[str]:
    """Every difference in names, modes and contents (never the contents themselves)."""
    out: list[str] = []
    for path in sorted(expected.files.keys() | actual.files.keys()):
        want, got = expected.files.get(path), actual.files.get(path)
        if want is None:
            out.append(f"{path}: unexpected file ({_describe(got)})")  # type: ignore[arg-type]
        elif got is None:
            out.append(f"{path}: missing ({_describe(want)} expected)")
        else:
            if want[0] != got[0]:
                out.append(f"{path}: mode {got[0]:04o}, expected {want[0]:04o}")
            if want[1] != got[1]:
                out.append(f"{path}: contents differ ({len(got[1])} vs {len(want[1])} bytes)")
    if expected.top_level != actual.top_level:
        out.append(
            f"top-level names {sorted(actual.top_level)}, expected {sorted(expected.top_level)}"
        )
    return out


def assert_same_tree(expected: Tree, actual: Tree) -> None:
    problems = tree_differences(expected, actual)
    if problems:
        raise AssertionError("volumes differ:\n  " + "\n  ".join(problems))
