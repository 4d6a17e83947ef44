"""Error messages fit gRPC metadata and a pod event; the log keeps every problem.

A class of six objects, each wrong in many ways with long values, gave an
InvalidParameters message of 43 KiB: gRPC clients refuse metadata over 8 KiB
(RESOURCE_EXHAUSTED), so the driver would not even have seen the error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml

from provider.errors import InvalidParameters, summarize
from provider.status import to_status
from tests.support.running import RunningProvider, pod_attributes, settings_for

TOKEN = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJtc2cifQ.c2lnLW1zZw"


def messy_class() -> dict[str, str]:
    objects = [
        {
            "objectName": f"o{i}" + "n" * 3000,
            "objectType": "t" * 3000,
            "objectAlias": "../" + "a" * 3000,
            "filePermission": "9" * 3000,
            "jmesPath": [{"path": "p" * 3000, "objectAlias": "q" * 3000}] * 3,
            **{f"bogus{j}" + "k" * 100: 1 for j in range(5)},
        }
        for i in range(6)
    ]
    return {"backend": "aws", "region": "r" * 3000, "pathTranslation": "x" * 3000,
            "objects": yaml.safe_dump(objects)}  # fmt: skip


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[RunningProvider]:
    with RunningProvider(settings_for(tmp_path, {})) as running:
        yield running


def test_a_messy_class_gets_a_bounded_message_and_a_full_log(
    provider: RunningProvider, caplog: pytest.LogCaptureFixture
) -> None:
    attributes = pod_attributes(messy_class(), tokens={"sts.amazonaws.com": TOKEN})
    with caplog.at_level(logging.WARNING, logger="provider.server"):
        exc = provider.mount_error(attributes)
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = exc.details() or ""
    assert details.startswith("InvalidParameters: ")
    assert 1024 < len(details.encode()) <= 4096, len(details.encode())
    assert "more (all in the provider's log)" in details
    [record] = [r for r in caplog.records if r.getMessage() == "mount failed"]
    problems = record.problems  # type: ignore[attr-defined]
    assert len(problems) > 30
    assert len(json.dumps(problems)) > 4 * len(details)
    assert TOKEN not in json.dumps(problems)


def test_duplicates_are_listed_once_and_near_misses_named() -> None:
    err = InvalidParameters(["objects[0]: bad", "objects[0]: bad", "other"])
    assert err.message == "objects[0]: bad; other"
    from provider.dialect import fold_keys
    from provider.errors import Problems

    problems = Problems()
    fold_keys({"objectNmae": "x"}, ("objectName", "objectType"), "objects[0]", problems)
    assert list(problems) == ["objects[0]: unknown key 'objectNmae' (did you mean 'objectName'?)"]


def test_redaction_comes_before_clipping() -> None:
    # A secret cut in half by the clip could no longer be found and redacted.
    secret = "s3cr3t-" + "v" * 600
    code, message = to_status(InvalidParameters([f"value {secret} is wrong"]), [secret])
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "s3cr3t" not in message
    assert "[REDACTED]" in message


def test_summarize_bounds_any_list() -> None:
    message = summarize([f"problem {i}: " + "x" * 1000 for i in range(100)])
    assert len(message.encode()) <= 3072
    assert message.endswith("more (all in the provider's log)")
