"""Overload degrades gracefully: whole mounts are admitted, the rest shed early.

40 mounts of 10 objects arrive at once at OpenBao behind a proxy that holds
every request 0.2 s, with 4 threads and 2 objects at a time per mount: the
threads can finish about two mounts a second. Without admission every mount
started, each got a sliver of the threads, and all ran out of time together
(0 of 40). Now a good share succeed, and the others are turned away with
UNAVAILABLE (the driver retries it) well before their deadline.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from provider.backends.vault import VaultSettings
from tests.support.faultproxy import FaultProxy
from tests.support.openbao import (
    TokenSigner,
    add_policy,
    add_role,
    enable_jwt_auth,
    openbao_server,
)
from tests.support.running import RunningProvider, files_of, pod_attributes, settings_for

OBJECTS = 10
MOUNTS = 40
DEADLINE = 8.0
WORKERS = 4
DELAY = 0.2
# Whole mounts the threads can finish within one deadline (16): 2.5x overload.
CAPACITY = WORKERS / DELAY / OBJECTS * DEADLINE


@pytest.fixture(scope="module")
def overloaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningProvider, str]]:
    signer = TokenSigner()
    with openbao_server() as bao:
        root = bao.client()
        enable_jwt_auth(root, signer)
        add_policy(root, "load", {"secret/data/load/*": ["read"]})
        add_role(root, "load", ["app"], ["load"])
        for i in range(OBJECTS):
            root.secrets.kv.v2.create_or_update_secret(
                path=f"load/s{i}", mount_point="secret", secret={"v": f"value-{i}"}
            )
        proxy = FaultProxy.in_front_of(bao.address, raw=True, latency=DELAY)
        settings = settings_for(
            tmp_path_factory.mktemp("overload"),
            {"vault": VaultSettings(address=proxy.url())},
            workers=WORKERS,
            max_parallel=2,
            mount_timeout=DEADLINE,
        )
        try:
            with RunningProvider(settings) as provider:
                yield provider, signer.token("app")
        finally:
            proxy.close()


def mount(provider: RunningProvider, token: str, pod: str) -> tuple[str, float]:
    objects = "\n".join(
        f"- {{objectName: s{i}, secretPath: secret/data/load/s{i}, secretKey: v}}"
        for i in range(OBJECTS)
    )
    params = {"roleName": "load", "objects": objects}
    started = time.monotonic()
    try:
        response = provider.mount(
            pod_attributes(params, pod=pod, tokens={"vault": token}), timeout=DEADLINE + 5
        )
    except grpc.RpcError as exc:
        return exc.code().name, time.monotonic() - started
    assert files_of(response)["s3"][1] == b"value-3"
    return "OK", time.monotonic() - started


def test_overload_admits_whole_mounts_and_sheds_the_rest_early(
    overloaded: tuple[RunningProvider, str],
) -> None:
    provider, token = overloaded
    assert mount(provider, token, "warm")[0] == "OK"  # login cached, plan cached
    with ThreadPoolExecutor(MOUNTS) as pool:
        results = list(pool.map(lambda i: mount(provider, token, f"p{i}"), range(MOUNTS)))
    codes = Counter(code for code, _ in results)
    print("outcomes:", dict(codes))
    # At least half of what the threads can finish must succeed (0 before
    # admission: all 40 DEADLINE_EXCEEDED), and the others are told to come
    # back. A few admitted mounts may still run out of time on a machine this
    # busy (shared CPU); never INTERNAL.
    assert codes["OK"] >= CAPACITY / 2, codes
    assert set(codes) <= {"OK", "UNAVAILABLE", "DEADLINE_EXCEEDED"}, codes
    assert codes["DEADLINE_EXCEEDED"] <= 4, codes
    shed = [seconds for code, seconds in results if code == "UNAVAILABLE"]
    # Shed early: on average well before the deadline was burnt.
    if shed:
        assert sum(shed) / len(shed) < DEADLINE * 0.75, shed
