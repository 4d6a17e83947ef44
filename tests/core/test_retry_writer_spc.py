"""provider.retry, provider.writer, provider.spc."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import pytest

from provider.errors import DeadlineExceeded, InvalidPath, NotFound, Unavailable
from provider.request import TOKENS
from provider.retry import Deadline, RetryPolicy, with_retries
from provider.spc import PodContext, build_attributes, load_spc
from provider.writer import DATA_LINK, PayloadFile, write_payload

FAST = RetryPolicy(attempts=4, base_delay=0.001, max_delay=0.002, min_attempt_time=0.01)


class Flaky:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def run(flaky: Flaky, *, seconds: float = 5.0, policy: RetryPolicy = FAST) -> str:
    return asyncio.run(with_retries(flaky, deadline=Deadline.after(seconds), policy=policy))


def test_retries_transient_then_succeeds() -> None:
    flaky = Flaky([Unavailable("x"), Unavailable("y")])
    assert run(flaky) == "ok" and flaky.calls == 3


def test_attempts_are_bounded() -> None:
    flaky = Flaky([Unavailable(str(i)) for i in range(10)])
    with pytest.raises(Unavailable, match="3"):
        run(flaky)
    assert flaky.calls == 4


def test_definite_errors_are_not_retried() -> None:
    flaky = Flaky([NotFound("gone")])
    with pytest.raises(NotFound):
        run(flaky)
    assert flaky.calls == 1


def test_expired_deadline() -> None:
    flaky = Flaky([])
    with pytest.raises(DeadlineExceeded):
        run(flaky, seconds=0.0)
    assert flaky.calls == 0


def test_retry_cut_by_deadline_reports_the_transient_fault() -> None:
    """An attempt that times out after a transient fault: report the fault (UNAVAILABLE)."""
    flaky = Flaky([Unavailable("region down"), DeadlineExceeded("timed out")])
    with pytest.raises(Unavailable, match="region down"):
        run(flaky)
    assert flaky.calls == 2


def test_no_time_for_a_retry_reports_the_fault() -> None:
    slow = RetryPolicy(attempts=4, base_delay=10, max_delay=10, min_attempt_time=0.01)
    # The server's Retry-After, not the jittered backoff: a jittered wait below
    # the deadline (1 time in 20) made this test retry and fail.
    flaky = Flaky([Unavailable("down", retry_after=10)])
    with pytest.raises(Unavailable, match="down"):
        run(flaky, seconds=0.5, policy=slow)
    assert flaky.calls == 1


def test_a_first_attempt_made_by_the_caller_counts_as_an_attempt() -> None:
    """``failed``: the caller's own first try (FetchContext.call's fast path) failed."""
    flaky = Flaky([Unavailable("again")])
    policy = RetryPolicy(attempts=2, base_delay=0.001, max_delay=0.002, min_attempt_time=0.01)
    with pytest.raises(Unavailable, match="again"):
        asyncio.run(with_retries(flaky, deadline=Deadline.after(5), policy=policy,
                                 failed=Unavailable("first")))
    assert flaky.calls == 1  # attempt 2 of 2
    flaky = Flaky([])
    assert asyncio.run(with_retries(flaky, deadline=Deadline.after(5), policy=FAST,
                                    failed=Unavailable("first"))) == "ok"
    assert flaky.calls == 1


@pytest.mark.parametrize(
    ("attempt", "retry_after", "low", "high"),
    [
        (1, None, 0, 0.1),
        (3, None, 0, 0.4),
        (10, None, 0, 2.0),
        (1, 1.5, 1.5, 1.5),
        (1, 100.0, 60.0, 60.0),  # capped at the ceiling; the deadline decides the rest
    ],
)
def test_delay(attempt: int, retry_after: float | None, low: float, high: float) -> None:
    assert low <= RetryPolicy().delay(attempt, retry_after) <= high


def _read(target: Path) -> dict[str, tuple[int, bytes]]:
    out = {}
    for root, dirs, files in os.walk(target, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith("..")]
        for name in files:
            p = Path(root) / name
            out[str(p.relative_to(target))] = (stat.S_IMODE(p.stat().st_mode), p.read_bytes())
    return out


def test_writer_layout_and_replace(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    write_payload(target, [PayloadFile("a", 0o600, b"1"), PayloadFile("d/b", 0o444, b"\xff")])
    first = os.readlink(target / DATA_LINK)
    assert first.startswith("..")
    assert os.readlink(target / "a") == "..data/a" and os.readlink(target / "d") == "..data/d"
    assert _read(target) == {"a": (0o600, b"1"), "d/b": (0o444, b"\xff")}
    write_payload(target, [PayloadFile("a", 0o640, b"2")])
    assert _read(target) == {"a": (0o640, b"2")}
    assert not (target / first).exists() and not (target / "d").is_symlink()


def test_writer_leaves_an_unchanged_volume_alone(tmp_path: Path) -> None:
    """As the driver's writer: same contents, nothing to remove -> no new ..data (modes aside)."""
    target = tmp_path / "vol"
    payload = [PayloadFile("a", 0o600, b"1"), PayloadFile("d/b", 0o444, b"2")]
    assert write_payload(target, payload) is True
    first = os.readlink(target / DATA_LINK)
    assert write_payload(target, payload) is False
    assert write_payload(target, [PayloadFile("a", 0o644, b"1"), payload[1]]) is False
    assert os.readlink(target / DATA_LINK) == first
    assert _read(target)["a"] == (0o600, b"1")
    # A file left out is a change: the volume is rewritten without it.
    assert write_payload(target, [payload[0]]) is True
    assert os.readlink(target / DATA_LINK) != first
    assert _read(target) == {"a": (0o600, b"1")}
    # So is new content.
    assert write_payload(target, [PayloadFile("a", 0o600, b"changed")]) is True
    assert _read(target) == {"a": (0o600, b"changed")}


@pytest.mark.parametrize(
    ("mode", "written"),
    [
        pytest.param(0o4755, 0o755, id="setuid"),
        pytest.param(0o2640, 0o640, id="setgid"),
        pytest.param(0o1600, 0o600, id="sticky"),
        pytest.param(0o400, 0o400, id="plain"),
    ],
)
def test_writer_applies_permission_bits_only(tmp_path: Path, mode: int, written: int) -> None:
    write_payload(tmp_path, [PayloadFile("f", mode, b"x")])
    assert (tmp_path / "f").stat().st_mode & 0o7777 == written


def test_writer_refuses_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(InvalidPath):
        write_payload(tmp_path, [PayloadFile("../escape", 0o644, b"x")])
    assert list(tmp_path.iterdir()) == []


SPC = """
apiVersion: v1
kind: ConfigMap
---
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: my-spc}
spec:
  provider: polysecret
  parameters:
    region: us-east-1
    usePodIdentity: true
    objects: |
      - objectName: db
"""


def test_load_spc() -> None:
    spc = load_spc(SPC)
    assert (spc.name, spc.provider) == ("my-spc", "polysecret")
    assert spc.parameters == {
        "region": "us-east-1",
        "usePodIdentity": "true",
        "objects": "- objectName: db\n",
    }
    with pytest.raises(ValueError):
        load_spc("kind: Pod")


@pytest.mark.parametrize(
    ("reconciler", "has_v16_keys"),
    [pytest.param(False, True, id="publish"), pytest.param(True, False, id="v1.5-reconciler")],
)
def test_build_attributes(reconciler: bool, has_v16_keys: bool) -> None:
    spc = load_spc(SPC)
    pod = PodContext(
        name="p", namespace="ns", service_account="sa", tokens={"sts.amazonaws.com": "t"}
    )
    attrs = build_attributes(
        spc, pod, volume_attributes={"region": "eu-west-1"}, rotation_reconciler=reconciler
    )
    assert ("secretProviderClass" in attrs) is has_v16_keys
    assert ("csi.storage.k8s.io/ephemeral" in attrs) is has_v16_keys
    assert attrs["region"] == (
        "eu-west-1" if has_v16_keys else "us-east-1"
    )  # volume attributes win
    assert attrs["csi.storage.k8s.io/serviceAccount.name"] == "sa"
    assert json.loads(attrs[TOKENS])["sts.amazonaws.com"]["token"] == "t"
