"""Scenario 3, the rotation engine's part: two pods of one service account share reads.

Counted by the backend itself: OpenBao's file audit device logs every request
it serves. Two pods of one ServiceAccount mount the same Vault class with
`refreshInterval: 1h`; kubelet re-publishes both volumes every syncFrequency
(10 s), so the driver calls Mount again and again for each pod, with kubelet's
fresh tokens. A peer provider reads every object on every one of those calls;
ours must read each object once for the whole identity.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml

from tests.e2e import pods
from tests.e2e.conftest import APP_SA, World

# Republishes to wait for, per pod (kubelet's syncFrequency is 10 s).
POLLS = 3


def _secret_paths(spc: dict[str, Any]) -> set[str]:
    objects = yaml.safe_load(spc["spec"]["parameters"]["objects"])
    return {str(o["secretPath"]).split("?", 1)[0].removeprefix("/") for o in objects}


def _reads(audit: Path, start: int, paths: set[str]) -> dict[str, int]:
    counts = dict.fromkeys(paths, 0)
    with audit.open("rb") as fh:
        fh.seek(start)
        for line in fh:
            entry = json.loads(line)
            request = entry.get("request") or {}
            if entry.get("type") == "response" and request.get("path") in counts:
                counts[request["path"]] += 1
    return counts


def _mounts_logged(world: World, pod: str) -> int:
    return sum(
        1
        for line in world.provider.log().splitlines()
        # Either log format (the e2e install uses text): the message and the pod.
        if "mount succeeded" in line and f"default/{pod}" in line
    )


def test_two_pods_of_one_service_account_share_one_read_per_object(world: World) -> None:
    scenario = world.scenario("vault")
    spc: dict[str, Any] = yaml.safe_load(scenario.spc_yaml)
    spc["metadata"]["name"] = f"{scenario.spc_name}-shared"
    spc["spec"]["parameters"]["refreshInterval"] = "1h"
    paths = _secret_paths(spc)
    audit = world.bao.audit_log
    assert audit is not None
    start = audit.stat().st_size
    world.cluster.apply(spc)
    names = ("shared-a", "shared-b")
    for name in names:
        world.cluster.apply(pods.pod(name, APP_SA, pods.FILES_SCRIPT, spc=spc["metadata"]["name"]))
    try:
        for name in names:
            assert pods.wait_for_round(world.cluster, name, "FILE") == scenario.files
        # Every pod's volume is published again and again: wait for the polls.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and min(_mounts_logged(world, n) for n in names) < POLLS:
            time.sleep(1)
        mounts = {n: _mounts_logged(world, n) for n in names}
        assert min(mounts.values()) >= POLLS, mounts
        reads = _reads(audit, start, paths)
    finally:
        pods.delete(world.cluster, *names)
    # One read per object for the identity, however many pods and polls; a peer
    # would have read each object once per mount.
    assert reads == dict.fromkeys(paths, 1), (reads, mounts)
