"""The volume reader of the conformance tests rejects layouts the driver never writes.

Why this exists: the conformance tests compare two volumes with
``read_tree``; if it silently accepted a real file at the top, a stale
``..<timestamp>`` directory or a link that bypasses ``..data``, two equally
wrong volumes would compare equal. Here each such layout is built by hand
(starting from a volume written by our own writer) and must be reported.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from provider.writer import PayloadFile, write_payload
from tests.conformance.trees import LayoutError, read_tree, tree_differences

pytestmark = pytest.mark.conformance


def _volume(target: Path) -> Path:
    write_payload(
        target,
        [
            PayloadFile("a", 0o600, b"one"),
            PayloadFile("dir/b", 0o644, b"\x00two"),
        ],
    )
    return target


def test_reads_the_atomic_writer_layout(tmp_path: Path) -> None:
    tree = read_tree(_volume(tmp_path / "v"))
    assert tree.files == {"a": (0o600, b"one"), "dir/b": (0o644, b"\x00two")}
    assert tree.top_level == {"a", "dir"}
    assert tree.data_dir.startswith("..") and tree.data_dir != "..data"


def _real_file_at_top(t: Path) -> None:
    (t / "a").unlink()
    (t / "a").write_bytes(b"one")


def _link_bypasses_data(t: Path) -> None:
    data_dir = os.readlink(t / "..data")
    (t / "a").unlink()
    os.symlink(f"{data_dir}/a", t / "a")


def _stale_timestamp_dir(t: Path) -> None:
    shutil.copytree(t / os.readlink(t / "..data"), t / "..2020_01_01_00_00_00.1")


def _data_not_a_link(t: Path) -> None:
    data_dir = os.readlink(t / "..data")
    (t / "..data").unlink()
    shutil.copytree(t / data_dir, t / "..data")


def _missing_top_link(t: Path) -> None:
    (t / "dir").unlink()


def _symlink_inside_data(t: Path) -> None:
    os.symlink("/etc/hostname", t / "..data" / "dir" / "c")


@pytest.mark.parametrize(
    ("breaker", "message"),
    [
        pytest.param(_real_file_at_top, "'a' is not a symlink", id="real-file-at-top"),
        pytest.param(_link_bypasses_data, "not into ..data", id="link-bypasses-data"),
        pytest.param(_stale_timestamp_dir, "stray writer entry", id="stale-timestamp-dir"),
        pytest.param(_data_not_a_link, "is not a symlink", id="data-not-a-link"),
        pytest.param(_missing_top_link, "do not match the content", id="missing-top-link"),
        pytest.param(_symlink_inside_data, "inside ..data is a symlink", id="symlink-in-data"),
    ],
)
def test_rejects_layouts_the_driver_never_writes(
    tmp_path: Path, breaker: Callable[[Path], None], message: str
) -> None:
    target = _volume(tmp_path / "v")
    breaker(target)
    with pytest.raises(LayoutError, match=message):
        read_tree(target)


def test_differences_name_path_mode_and_size_never_contents(tmp_path: Path) -> None:
    one = read_tree(_volume(tmp_path / "one"))
    two = tmp_path / "two"
    write_payload(
        two,
        [PayloadFile("a", 0o644, b"other"), PayloadFile("extra", 0o644, b"x")],
    )
    assert tree_differences(one, read_tree(two)) == [
        "a: mode 0644, expected 0600",
        "a: contents differ (5 vs 3 bytes)",
        "dir/b: missing (mode 0644, 4 bytes expected)",
        "extra: unexpected file (mode 0644, 1 bytes)",
        "top-level names ['a', 'extra'], expected ['a', 'dir']",
    ]
    assert tree_differences(one, one) == []
