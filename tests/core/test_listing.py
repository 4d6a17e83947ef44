"""The shared ``select`` shape (provider.listing): parsing, bounds, file names."""

from __future__ import annotations

import pytest

from provider.codes import ErrorCode
from provider.errors import InvalidRequest, NotFound, Problems
from provider.listing import DEFAULT_MAX, Select, check_bound, parse, relative_name


def _parse(
    raw: object, *, recursive: bool = True, tags: bool = True
) -> tuple[Select | None, list[str]]:
    problems = Problems()
    got = parse(raw, "object 'x'", problems, provider_max=500, recursive=recursive, tags=tags)
    return got, list(problems)


def test_full_shape() -> None:
    got, problems = _parse({"Path": "/app/", "recursive": "true", "tags": {"team": "a"}, "max": 7})
    assert problems == []
    assert got == Select(path="/app/", recursive=True, tags=(("team", "a"),), max=7)


def test_defaults() -> None:
    got, _ = _parse({"path": "app/"})
    assert got == Select(path="app/", recursive=False, tags=(), max=DEFAULT_MAX)


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ("app/", "must be a mapping"),
        ({}, "'path' is required"),
        ({"path": "a", "max": 0}, "between 1 and 500"),
        ({"path": "a", "max": 501}, "--max-objects"),
        ({"path": "a", "max": "many"}, "whole number"),
        ({"path": "a", "recursive": "sometimes"}, "true or false"),
        ({"path": "a", "tags": ["x"]}, "mapping of tag names"),
        ({"path": "a", "prefix": "b"}, "unknown key 'prefix'"),
    ],
)
def test_problems_name_the_object_and_key(raw: object, needle: str) -> None:
    got, problems = _parse(raw)
    assert got is None
    assert any(needle in p and p.startswith("object 'x': parameter 'select'") for p in problems)


def test_keys_a_type_does_not_support_are_refused() -> None:
    _, problems = _parse({"path": "a", "recursive": True}, recursive=False)
    assert any("'recursive' does not apply" in p for p in problems)
    _, problems = _parse({"path": "a", "tags": {"t": "v"}}, tags=False)
    assert any("'tags' does not apply" in p for p in problems)


def test_bound_and_empty() -> None:
    sel = Select(path="/app/", max=2)
    check_bound(sel, 2, "object 'x'")
    with pytest.raises(InvalidRequest) as over:
        check_bound(sel, 3, "object 'x'")
    assert over.value.code is ErrorCode.SelectionTooLarge
    assert "max=2" in over.value.message
    with pytest.raises(NotFound):
        check_bound(sel, 0, "object 'x'")


def test_relative_names() -> None:
    sel = Select(path="/app/")
    assert relative_name(sel, "/app/db", "o") == "db"
    assert relative_name(sel, "/app/db/user", "o") == "db/user"
    for bad in ("/app/../etc", "/app/..data", "/app/a//x", "/app/" + "a" * 300):
        with pytest.raises(InvalidRequest, match="not a valid file path"):
            relative_name(sel, bad, "o")
