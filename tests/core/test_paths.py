"""provider.paths: the driver's file path rules (driver-contract.md, point 5)."""

from __future__ import annotations

import pytest

from provider.errors import InvalidPath
from provider.paths import check_paths, path_problem


@pytest.mark.parametrize(
    ("path", "why"),
    [
        pytest.param("", "is empty", id="empty"),
        pytest.param("/abs", "is absolute", id="absolute"),
        pytest.param("a\x00b", "NUL", id="nul"),
        pytest.param("..", "'..' element", id="dotdot"),
        pytest.param("a/../b", "'..' element", id="dotdot-inside"),
        pytest.param("a/..", "'..' element", id="dotdot-last"),
        pytest.param("..data", "starts with '..'", id="reserved-data"),
        pytest.param("..2026_01_01/x", "starts with '..'", id="reserved-timestamp"),
        pytest.param("./a", "not clean", id="dot-slash"),
        pytest.param("a/./b", "not clean", id="inner-dot"),
        pytest.param("a/.", "not clean", id="trailing-dot"),
        pytest.param("a//b", "not clean", id="double-slash"),
        pytest.param("a/", "not clean", id="trailing-slash"),
        pytest.param(".", "not clean", id="dot"),
        pytest.param("x" * 256, "longer than 255", id="element-256"),
        pytest.param("\u00e9" * 128, "longer than 255", id="element-256-bytes-utf8"),
        pytest.param("/".join(["d" * 255] * 17), "longer than 4096", id="path-4096-plus"),
    ],
)
def test_rejected(path: str, why: str) -> None:
    problem = path_problem(path)
    assert problem is not None and why in problem


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("a", id="simple"),
        pytest.param("a/b/c", id="nested"),
        pytest.param("a..b", id="dots-inside"),
        pytest.param("b/..c", id="dotdot-prefix-not-first"),
        pytest.param(".hidden", id="hidden"),
        pytest.param("x" * 255, id="element-255"),
        pytest.param("/".join(["d" * 255] * 16), id="path-4095"),
    ],
)
def test_accepted(path: str) -> None:
    assert path_problem(path) is None


def test_check_paths_names_objects_and_lists_all() -> None:
    with pytest.raises(InvalidPath) as info:
        check_paths([("ok", "o1"), ("../x", "o2"), ("a//b", "o3"), ("ok", "o4")])
    text = str(info.value)
    assert text.startswith("InvalidPath: ")
    assert "object 'o2'" in text and "object 'o3'" in text
    assert "object 'o4'" in text and "also written by object 'o1'" in text


def test_file_beside_directory() -> None:
    with pytest.raises(InvalidPath) as info:
        check_paths([("a/b/c", "deep"), ("a", "flat")])
    assert "object 'deep'" in str(info.value) and "object 'flat'" in str(info.value)
    check_paths([("a/b", "x"), ("a/c", "y"), ("ab", "z")])  # siblings are fine
