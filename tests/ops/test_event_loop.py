"""``serve --event-loop``: uvloop by default, asyncio's own on request, a clear refusal else.

Both loops serve a real mount (moto through the delaying proxy of conftest,
with no delay) and a SIGTERM drain; the rest of the suite runs on the loop
``auto`` picks (tests/conftest.py), so this file is where asyncio's own loop is
still exercised end to end.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from provider import eventloop
from provider.mountcli import mount_once
from tests.ops.conftest import NODE_PUBLISH_SECRET, REPO, SlowProxy, aws_attributes
from tests.support.moto import REGION


@pytest.mark.parametrize(("flag", "expected"), [(None, "uvloop"), ("asyncio", "asyncio"),
                                                ("uvloop", "uvloop")])
def test_serve_mounts_on_the_chosen_loop_and_drains(
    seeded: dict[str, str], slow_proxy: SlowProxy, provider_process: Any,
    flag: str | None, expected: str,
) -> None:
    args = ["--aws-region", REGION, "--aws-endpoint-url", slow_proxy.url]
    if flag:
        args += ["--event-loop", flag]
    p = provider_process(*args)
    assert p.wait_started()["event_loop"] == expected
    names = tuple(seeded)
    before = slow_proxy.arrived
    response = mount_once(
        socket=p.socket, attributes=aws_attributes(*names), secrets={"clientsecret":
        NODE_PUBLISH_SECRET}, target=Path("/tmp/target"), timeout=60,
    )
    assert {f.path: f.contents.decode() for f in response.files} == {
        name.replace("/", "_"): value for name, value in seeded.items()
    }
    assert slow_proxy.arrived - before == len(names)  # every object read from the backend
    p.proc.send_signal(signal.SIGTERM)
    assert p.proc.wait(30) == 0
    assert not p.socket.exists()


def test_an_unknown_loop_is_refused_at_start(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "provider", "serve", "--socket-dir", str(tmp_path)],
        check=False, cwd=REPO, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),
                       "POLYSECRET_EVENT_LOOP": "trio"},
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert "cannot start: --event-loop must be one of auto, uvloop, asyncio" in done.stderr
    assert not (tmp_path / "polysecret.sock").exists()


@pytest.mark.parametrize("found", [False, True])  # not installed; installed, does not load
def test_without_uvloop_auto_is_asyncio_and_uvloop_is_refused(
    monkeypatch: pytest.MonkeyPatch, found: bool,
) -> None:
    monkeypatch.setattr(eventloop, "uvloop_installed", lambda: found)
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop: ImportError
    assert eventloop.factory("auto") is asyncio.new_event_loop
    assert eventloop.factory("asyncio") is asyncio.new_event_loop
    with pytest.raises(ValueError, match="uvloop is not installed or does not load"):
        eventloop.factory("uvloop")


def test_uvloop_is_installed_with_the_provider() -> None:
    # A core dependency (pyproject): `auto` is uvloop wherever polysecret is installed.
    assert eventloop.uvloop_installed()
    loop = eventloop.factory("auto")()
    try:
        assert eventloop.name(loop) == "uvloop"
    finally:
        loop.close()
