"""Log lines of a bug: where it happened, never what its message quoted."""

from __future__ import annotations

import json
import logging

import pytest

from provider.logs import JsonFormatter, TextFormatter

SECRET = "hunter2-Secret-Value"


def _record_of_a_bug() -> logging.LogRecord:
    def buggy_render(data: dict[str, str]) -> str:
        return data[SECRET]  # a KeyError whose text is the secret

    try:
        buggy_render({})
    except KeyError:
        import sys

        return logging.LogRecord(
            "provider.server", logging.ERROR, __file__, 1, "unexpected error in Mount", None,
            sys.exc_info(),
        )
    raise AssertionError("unreachable")


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()], ids=["json", "text"])
def test_bug_is_located_without_its_message(formatter: logging.Formatter) -> None:
    line = formatter.format(_record_of_a_bug())
    assert SECRET not in line
    assert "KeyError" in line
    assert "core/test_logs.py:" in line and "in buggy_render" in line


def test_json_line_fields() -> None:
    entry = json.loads(JsonFormatter().format(_record_of_a_bug()))
    assert entry["exception"] == "KeyError"
    assert entry["where"].startswith("core/test_logs.py:")
    assert entry["where"].split(" <- ")[0].endswith("in buggy_render")  # innermost first
    assert entry["level"] == "error" and entry["msg"] == "unexpected error in Mount"
