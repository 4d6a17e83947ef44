"""SIGTERM drains: in-flight mounts finish, new ones are refused, the socket goes, exit 0.

The provider runs as the container runs it (``python -m provider serve``) and is
signalled for real. Its Secrets Manager calls go through the delaying proxy of
conftest, so mounts are genuinely in flight when the signal arrives.
"""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc

from provider.mountcli import mount_once
from provider.v1alpha1 import service_pb2, service_pb2_grpc
from tests.ops.conftest import (
    NODE_PUBLISH_SECRET,
    STS_TOKEN,
    ProviderProcess,
    SlowProxy,
    aws_attributes,
    http_get,
)
from tests.support.moto import REGION


def _serve_args(proxy: SlowProxy, grace: float) -> list[str]:
    return [
        "--aws-region", REGION, "--aws-endpoint-url", proxy.url,
        "--grace-period", str(grace), "--log-level", "debug",
    ]


def _mount(socket: Path, names: tuple[str, ...], pod: str) -> Any:
    return mount_once(
        socket=socket,
        attributes=aws_attributes(*names, pod=pod),
        secrets={"clientsecret": NODE_PUBLISH_SECRET},
        target=Path("/tmp/target"),
        timeout=60,
    )


def _call_without_waiting(socket: Path) -> grpc.RpcError | None:
    """A new Version call that does not wait for the server to come back."""
    with grpc.insecure_channel(f"unix:{socket}") as channel:
        stub = service_pb2_grpc.CSIDriverProviderStub(channel)
        try:
            stub.Version(service_pb2.VersionRequest(version="v1alpha1"), timeout=2)
        except grpc.RpcError as exc:
            return exc
    return None


def test_sigterm_lets_in_flight_mounts_finish_and_removes_socket(
    seeded: dict[str, str], slow_proxy: SlowProxy, provider_process: Any
) -> None:
    grace = 15.0
    p: ProviderProcess = provider_process(*_serve_args(slow_proxy, grace))
    started = p.wait_started()
    assert p.socket.is_socket()
    # Start-up names the backends this installation can serve (every extra is installed here).
    ready = next(line for line in p.log_lines() if line.get("msg") == "ready")
    assert ready["backends"] == ["aws", "azure", "vault"]

    # Warm up (imports boto3, assumes the role) with no delay, then make calls slow.
    assert _mount(p.socket, ("ops/api-key",), "warm-0").files
    slow_proxy.delay = 2.0
    before = slow_proxy.arrived
    names = tuple(seeded)
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(_mount, p.socket, names, f"app-{i}") for i in range(4)]
        # Every mount has reached the backend (each fetches 2 secrets)...
        slow_proxy.wait_arrivals(before + 4)
        signalled = time.monotonic()
        p.proc.send_signal(signal.SIGTERM)
        # ...and calls arriving after the signal are refused while those still run.
        refused = None
        while refused is None and time.monotonic() - signalled < 5:
            refused = _call_without_waiting(p.socket)
        still_running = sum(not f.done() for f in futures)
        responses = [f.result(timeout=60) for f in futures]

    assert refused is not None, "new calls were still served 5 s after SIGTERM"
    assert still_running == 4, "the in-flight mounts ended before new calls were refused"
    for response in responses:
        files = {f.path: f.contents.decode() for f in response.files}
        assert files == {n.replace("/", "_"): v for n, v in seeded.items()}
    assert p.proc.wait(timeout=grace + 10) == 0
    # Drained as soon as the mounts were done, not after the whole grace period.
    assert time.monotonic() - signalled < grace
    assert not p.socket.exists()

    lines = p.log_lines()
    msgs = [line["msg"] for line in lines]
    assert msgs.count("mount succeeded") == 5
    assert msgs.index("stopping") < msgs.index("stopped")
    # The mounts finished after the signal, i.e. they really were in flight.
    stop_at = msgs.index("stopping")
    assert sum(m == "mount succeeded" for m in msgs[stop_at:]) == 4
    assert started["health_port"] == started["metrics_port"]


def test_grace_period_bounds_shutdown(
    seeded: dict[str, str], slow_proxy: SlowProxy, provider_process: Any
) -> None:
    """A mount slower than the grace period is cancelled; shutdown still completes."""
    p: ProviderProcess = provider_process(*_serve_args(slow_proxy, 1.0))
    p.wait_started()
    assert _mount(p.socket, ("ops/api-key",), "warm-0").files
    slow_proxy.delay = 8.0
    errors: list[grpc.RpcError] = []

    def slow_mount() -> None:
        # A select: its ListSecrets is a blocking botocore call on a pool
        # thread (the reads themselves run on the event loop and are simply
        # cancelled), so the grace period has a thread to abandon.
        attributes = aws_attributes("ops/api-key", pod="slow-0")
        attributes["objects"] = (
            "- objectAlias: ops\n  objectType: secretsmanager\n  select:\n    path: ops/\n"
        )
        try:
            mount_once(socket=p.socket, attributes=attributes,
                       secrets={"clientsecret": NODE_PUBLISH_SECRET},
                       target=Path("/tmp/target"), timeout=60)
        except grpc.RpcError as exc:
            errors.append(exc)

    t = threading.Thread(target=slow_mount)
    t.start()
    slow_proxy.wait_arrivals(2)
    signalled = time.monotonic()
    p.proc.send_signal(signal.SIGTERM)
    assert p.proc.wait(timeout=10) == 0
    assert time.monotonic() - signalled < 5.0
    t.join(15)
    assert len(errors) == 1  # the driver sees a failed (retried) mount, not a hang
    assert not p.socket.exists()
    cancelled = [line for line in p.log_lines() if line.get("outcome") == "Cancelled"]
    assert len(cancelled) == 1 and cancelled[0]["pod"] == "default/slow-0"
    # The SDK call cut off by the grace period did not hold the exit up.
    assert "abandoning backend calls past the grace period" in [m["msg"] for m in p.log_lines()]


def test_logs_and_metrics_never_carry_secrets_or_tokens(
    seeded: dict[str, str], slow_proxy: SlowProxy, provider_process: Any
) -> None:
    """Known secret values, the pod token and nodePublishSecretRef data: in no output."""
    p: ProviderProcess = provider_process(*_serve_args(slow_proxy, 5.0))
    started = p.wait_started()
    ok = _mount(p.socket, tuple(seeded), "app-0")
    assert {f.contents.decode() for f in ok.files} == set(seeded.values())
    try:
        _mount(p.socket, ("ops/missing",), "app-1")
        raise AssertionError("mount of a missing secret succeeded")
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.NOT_FOUND
        message = exc.details() or ""
    status, metrics = http_get(started["metrics_port"], "/metrics")
    assert status == 200
    p.proc.send_signal(signal.SIGTERM)
    assert p.proc.wait(timeout=15) == 0
    log = p.log_path.read_text()

    assert '"msg": "mount succeeded"' in log and '"msg": "mount failed"' in log
    forbidden = [*seeded.values(), STS_TOKEN, NODE_PUBLISH_SECRET]
    # Also no fragment long enough to matter (a token split across fields).
    forbidden += [STS_TOKEN.split(".")[1], STS_TOKEN.split(".")[2]]
    for value in forbidden:
        assert value not in log
        assert value not in metrics
        assert value not in message
    # Metrics carry no object names either (labels are closed sets).
    for name in [*seeded, "ops/missing"]:
        assert name not in metrics


def test_stopping_provider_leaves_a_newer_providers_socket(tmp_path: Path) -> None:
    """Rolling update with maxSurge: the new pod binds first; the old one must not unlink it."""
    from tests.support.running import RunningProvider, settings_for

    old = RunningProvider(settings_for(tmp_path, {}))
    new = RunningProvider(settings_for(tmp_path, {}))
    with old:
        with new:
            old.stop()  # SIGTERM of the old pod after the new one took the path over
            assert new.socket().is_socket()
            with grpc.insecure_channel(f"unix:{new.socket()}") as channel:
                reply = service_pb2_grpc.CSIDriverProviderStub(channel).Version(
                    service_pb2.VersionRequest(version="v1alpha1"), timeout=5
                )
            assert reply.version == "v1alpha1"
        assert not new.socket().exists()  # its own socket it does remove
