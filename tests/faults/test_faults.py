"""Backend faults never wedge the provider, never give empty files, and heal at once.

Why: issue 10 found a provider that answered ``200 {}`` with empty files, that
locked an identity out after a stalled login and that kept failing after a slow
backend had recovered. Each case here puts one fault between the provider and
a real backend (moto, OpenBao, the Key Vault stand-in), either on the reads
with credentials already cached (warm) or on the login itself (cold), mounts
through the real socket and checks:

* the status: the one the fault calls for (UNAVAILABLE for transient faults;
  a stall or drip that outlasts the mount deadline may also be
  DEADLINE_EXCEEDED), never INTERNAL, never OK with missing or wrong files;
* the mount answers within its deadline, and ``Version`` and ``/healthz``
  keep answering while it is in flight;
* the message carries no token or secret value;
* the fault really met a request (counted by the proxy), and once it is
  switched off a new mount succeeds at once, with the right files.

A case that is known to fail is listed in ``KNOWN`` as a strict xfail naming
its issue item: it must lose the mark the moment it is fixed.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

import grpc
import pytest

from provider.v1alpha1 import service_pb2, service_pb2_grpc
from tests.faults.conftest import MOUNT_TIMEOUT, Target
from tests.support.faultproxy import Fault, FaultProxy, http_date
from tests.support.running import RunningProvider, files_of

OK = grpc.StatusCode.OK
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
DEADLINE = grpc.StatusCode.DEADLINE_EXCEEDED
# Slack over the mount deadline for the answer to come back on a loaded 2-core machine.
SLACK = 1.0
RECOVERY_SECONDS = 2.0


@dataclass(frozen=True)
class Case:
    fault: Callable[[], Fault]
    expect: frozenset[grpc.StatusCode]
    # A burst the provider must ride out: the gap (s) it must leave after the
    # faulted answer, as that answer's Retry-After asked.
    honour: float = 0.0


TIMED_OUT = frozenset({UNAVAILABLE, DEADLINE})
TRANSIENT = frozenset({UNAVAILABLE})
SUCCESS = frozenset({OK})

CASES: dict[str, Case] = {
    # Slower than loopback but well inside the deadline: just slower.
    "latency": Case(lambda: Fault.delay(0.3), SUCCESS),
    "stall": Case(Fault.stalled, TIMED_OUT),
    "reset": Case(Fault.rst, TRANSIENT),
    "drip": Case(lambda: Fault.dripping(0.02), TIMED_OUT),
    "truncated": Case(Fault.truncated, TRANSIENT),
    "cut-body": Case(Fault.cut, TRANSIENT),
    "200-empty-object": Case(lambda: Fault.answer(200, "{}"), TRANSIENT),
    "200-not-json": Case(lambda: Fault.answer(200, "not json"), TRANSIENT),
    "500-json-busy": Case(lambda: Fault.answer(500, '{"message":"busy"}'), TRANSIENT),
    "503-always": Case(lambda: Fault.throttle(503, "1"), TRANSIENT),
    "429-burst-retry-after-seconds": Case(
        lambda: Fault.throttle(429, "1", times=1), SUCCESS, honour=0.9
    ),
    "503-burst-retry-after-date": Case(
        lambda: Fault.throttle(503, http_date(2), times=1), SUCCESS, honour=0.9
    ),
}

# (backend, phase, case) -> (issue item, why): known failures, each a strict xfail.
KNOWN: dict[tuple[str, str, str], tuple[int, str]] = {}


def _params() -> list[object]:
    out: list[object] = []
    for backend in ("aws", "vault", "azure"):
        for phase in ("warm", "cold"):
            for name in CASES:
                known = KNOWN.get((backend, phase, name))
                marks = [getattr(pytest.mark, backend)]  # needs that backend's server
                if known:
                    reason = f"issue 10 item {known[0]}: {known[1]}"
                    marks.append(pytest.mark.xfail(strict=True, reason=reason))
                out.append(pytest.param(backend, phase, name, id=f"{backend}-{phase}-{name}",
                                        marks=marks))
    return out


@dataclass
class Outcome:
    code: grpc.StatusCode
    details: str
    seconds: float
    response: service_pb2.MountResponse | None


def mount(provider: RunningProvider, target: Target, timeout: float = 30.0) -> Outcome:
    started = time.monotonic()
    try:
        response = provider.mount(target.attributes(), timeout=timeout)
    except grpc.RpcError as exc:
        return Outcome(exc.code(), exc.details() or "", time.monotonic() - started, None)
    return Outcome(OK, "", time.monotonic() - started, response)


def assert_files(target: Target, outcome: Outcome) -> None:
    assert outcome.code is OK, (outcome.code, outcome.details)
    assert outcome.response is not None
    files = {path: contents for path, (_mode, contents) in files_of(outcome.response).items()}
    assert files == target.files
    versions = [v.version for v in outcome.response.object_version]
    assert len(versions) == len(target.files) and all(versions), versions


def probe(provider: RunningProvider) -> tuple[float, float]:
    """Seconds a Version call and a /healthz GET took; raises if either fails."""
    started = time.monotonic()
    with grpc.insecure_channel(f"unix:{provider.socket()}") as channel:
        answer = service_pb2_grpc.CSIDriverProviderStub(channel).Version(
            service_pb2.VersionRequest(version="v1alpha1"), timeout=2.0
        )
    assert answer.runtime_name
    version = time.monotonic() - started
    started = time.monotonic()
    port = provider.app.port("/healthz")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3.0) as r:
        assert r.status == 200
    return version, time.monotonic() - started


def mount_while_probing(
    provider: RunningProvider, target: Target
) -> tuple[Outcome, list[tuple[float, float]]]:
    """A mount, with Version and /healthz asked every 0.25 s while it is in flight."""
    probes: list[tuple[float, float]] = []
    with ThreadPoolExecutor(1) as pool:
        future: Future[Outcome] = pool.submit(mount, provider, target)
        while not future.done():
            probes.append(probe(provider))
            time.sleep(0.25)
        return future.result(), probes


def check_fault_mount(target: Target, case: Case, outcome: Outcome) -> None:
    assert outcome.code is not grpc.StatusCode.INTERNAL, outcome.details
    assert outcome.code in case.expect, (outcome.code, outcome.details)
    assert outcome.seconds <= MOUNT_TIMEOUT + SLACK, outcome.seconds
    for secret in target.secrets:
        assert secret not in outcome.details
    if outcome.code is OK:
        assert_files(target, outcome)


def check_recovery(provider: RunningProvider, target: Target) -> None:
    recovered = mount(provider, target, timeout=MOUNT_TIMEOUT + SLACK)
    assert_files(target, recovered)
    assert recovered.seconds < RECOVERY_SECONDS, recovered.seconds


def retry_gap(proxy: FaultProxy, match: Callable[..., bool] | None) -> float:
    """Seconds between the faulted answer and the retry of that same request.

    Other requests (the mount's other object) may run in between: the retry
    is the next request with the same method, target and body.
    """
    seen = proxy.seen(match)
    answered = [i for i, s in enumerate(seen) if s.action == "answered"]
    assert answered, [s.action for s in seen]
    first = seen[answered[-1]]
    key = (first.request.method, first.request.target, first.request.body)
    retries = [
        s for s in seen[answered[-1] + 1 :]
        if (s.request.method, s.request.target, s.request.body) == key
    ]
    assert retries, "the provider never retried after the burst"
    return retries[0].at - first.at


@pytest.mark.parametrize(("backend", "phase", "name"), _params())
def test_fault(
    backend: str,
    phase: str,
    name: str,
    target_of: Callable[[str], Target],
    make_provider: Callable[..., RunningProvider],
) -> None:
    case = CASES[name]
    target = target_of(backend)
    provider = make_provider(target)
    if phase == "warm":
        assert_files(target, mount(provider, target))
        proxy, match = target.reads, target.is_read
    else:
        proxy, match = target.login, target.is_login
    before = len(proxy.seen(match))
    proxy.set(replace(case.fault(), match=match))
    try:
        outcome, probes = mount_while_probing(provider, target)
    finally:
        proxy.clear()
    assert len(proxy.seen(match)) > before, "the fault met no request"
    check_fault_mount(target, case, outcome)
    # Version and /healthz answered promptly all along (kubelet's probe allows 3 s).
    assert all(v < 2.0 and h < 2.5 for v, h in probes), probes
    if case.honour:
        assert retry_gap(proxy, match) >= case.honour
    check_recovery(provider, target)


@pytest.mark.aws
@pytest.mark.vault
def test_a_stalled_backend_does_not_starve_another(
    target_of: Callable[[str], Target],
    make_provider: Callable[..., RunningProvider],
) -> None:
    """Vault stalls for more mounts than there are workers; AWS mounts still succeed."""
    from provider.settings import ServerSettings

    vault, aws = target_of("vault"), target_of("aws")
    workers = 4
    provider = make_provider(vault, workers=workers)
    # One provider serving both backends (the fixture set only Vault's settings).
    provider.stop()
    both: ServerSettings = replace(
        provider.settings, backends={"vault": vault.settings, "aws": aws.settings}
    )
    provider = RunningProvider(both)
    provider.__enter__()
    try:
        assert_files(vault, mount(provider, vault))
        vault.reads.set(Fault.stalled(match=vault.is_read))
        stuck = [
            threading.Thread(target=mount, args=(provider, vault), daemon=True)
            for _ in range(workers + 2)
        ]
        for t in stuck:
            t.start()
        time.sleep(0.5)
        assert_files(aws, mount(provider, aws))
        for t in stuck:
            t.join(MOUNT_TIMEOUT + SLACK)
    finally:
        vault.reads.close()
        provider.stop()
