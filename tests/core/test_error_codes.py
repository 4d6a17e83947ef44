"""The error codes are data: one enum, one status each, one generated table.

Before, 39 string literals named the codes, the class decided the status, and
four hand-written tables disagreed (InvalidCertificate and InvalidKey were in
none). These tests fail when the committed table differs from the enum, when a
code is raised with a status other than its own, or when a second table appears.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from provider import admission, errors
from provider.codes import SPECS, ErrorCode, markdown_table
from provider.status import error_code, to_status

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "errors.md"
BEGIN = "<!-- BEGIN error-table"
END = "<!-- END error-table -->"

# Every ProviderError class a ``code=`` argument can be given to.
CLASSES: dict[str, type[errors.ProviderError]] = {
    name: cls
    for module in (errors, admission)
    for name, cls in vars(module).items()
    if isinstance(cls, type) and issubclass(cls, errors.ProviderError)
}

STATUS_OF_CLASS = {
    errors.InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def class_status(cls: type[errors.ProviderError]) -> grpc.StatusCode:
    """The status the class stands for (retries key on the class, statuses on the code)."""
    for base, status in STATUS_OF_CLASS.items():
        if issubclass(cls, base):
            return status
    return grpc.StatusCode.INTERNAL


def committed_table() -> str:
    text = DOC.read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END)
    return text[text.index("\n", start) + 1 : end]


def test_every_code_has_a_status_and_a_one_line_help() -> None:
    assert list(SPECS) == [c for c in SPECS if c in set(ErrorCode)]
    assert set(SPECS) == set(ErrorCode)
    for code in ErrorCode:
        assert code.name == code.value
        assert code.help and "\n" not in code.help, code


def test_the_committed_table_is_the_enum() -> None:
    assert committed_table() == markdown_table(), "run: python scripts/gen-error-table.py"
    for code in ErrorCode:
        assert f"| `{code}` | {code.status.name} |" in committed_table()
    # Once undocumented anywhere.
    assert "`InvalidCertificate` | INVALID_ARGUMENT" in committed_table()
    assert "`InvalidKey` | INVALID_ARGUMENT" in committed_table()


def test_the_generator_checks_and_writes_the_same_table(tmp_path: Path) -> None:
    script = ROOT / "scripts" / "gen-error-table.py"
    ok = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert subprocess.run(
        [sys.executable, "-m", "provider.codes", "--markdown"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout == markdown_table()


def test_no_other_page_keeps_its_own_error_table() -> None:
    row = re.compile(
        r"^\|[^|\n]*`(" + "|".join(ErrorCode) + r")`[^|\n]*\|\s*"
        r"(INVALID_ARGUMENT|PERMISSION_DENIED|NOT_FOUND|UNAVAILABLE|DEADLINE_EXCEEDED|INTERNAL)"
        r"|^\|\s*(INVALID_ARGUMENT|PERMISSION_DENIED|NOT_FOUND|UNAVAILABLE)\s*\|\s*`",
        re.M,
    )
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    stray = [p.name for p in pages if p != DOC and row.search(p.read_text(encoding="utf-8"))]
    assert stray == []


def _code_arguments() -> list[tuple[str, int, str, str]]:
    """(file, line, class name, code) of every ``Cls(..., code=ErrorCode.X)`` in provider/."""
    found = []
    for path in sorted((ROOT / "provider").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            for kw in node.keywords:
                if kw.arg != "code" or node.func.id not in CLASSES:
                    continue
                # ErrorCode.X, or each branch of ``ErrorCode.X if ... else ErrorCode.Y``.
                found.extend(
                    (path.name, node.lineno, node.func.id, sub.attr)
                    for sub in ast.walk(kw.value)
                    if isinstance(sub, ast.Attribute)
                    and isinstance(sub.value, ast.Name)
                    and sub.value.id == "ErrorCode"
                )
    return found


def test_each_code_is_raised_with_its_own_status() -> None:
    """The class decides retries (Unavailable), the code the status: they must agree."""
    found = _code_arguments()
    assert len(found) > 40  # the scan sees the backends' code= arguments
    wrong = [
        (file, line, name, code)
        for file, line, name, code in found
        if ErrorCode[code].status != class_status(CLASSES[name])
    ]
    assert wrong == []
    for cls in CLASSES.values():
        assert cls.code.status == class_status(cls), cls


def test_no_code_is_written_as_a_string_any_more() -> None:
    literal = re.compile(r"\bcode\s*=\s*[\"']")
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "provider").rglob("*.py")
        if "v1alpha1" not in p.parts and literal.search(p.read_text(encoding="utf-8"))
    ]
    assert offenders == []


@pytest.mark.parametrize("code", list(ErrorCode))
def test_status_and_message_follow_the_code(code: ErrorCode) -> None:
    cls = next(c for c in CLASSES.values() if class_status(c) == code.status)
    exc = cls("object 'a': something", code=code)
    status, message = to_status(exc)
    assert status == code.status
    assert message.startswith(f"{code.value}: ")
    assert error_code(exc) == code.value  # logs and metric labels keep the plain text
    assert error_code(ValueError("x")) == "Internal"
