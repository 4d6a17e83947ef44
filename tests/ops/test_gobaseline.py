"""bench/gobaseline makes exactly the peer's requests per mount, as the backends count them.

bench/cost.py reads its CPU per mount as a lower bound of the Go peer's: that
holds only if it really logs in (or gets a token) once per mount and reads
every object once, no more and no fewer. CI has Go (the driver's harness), so
it builds the program there too (~90 MB of the peers' SDK modules, ~20 s);
skipped where ``go`` is not installed.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import cost
from tests.support.faultproxy import FaultProxy

OBJECTS = 3
MEASURED = 2
MOUNTS = MEASURED + 2  # the program's two warm-up mounts are real mounts too


@pytest.fixture(scope="module")
def binary() -> Path:
    built, why_not = cost.build_go_baseline()
    if built is None:
        pytest.skip(why_not)
    return built


def run(binary: Path, backend: str, flags: dict[str, str]) -> dict[str, float]:
    argv = [str(binary), f"-backend={backend}", f"-objects={OBJECTS}", f"-mounts={MEASURED}"]
    argv += [f"{k}={v}" for k, v in flags.items()]
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120).stdout
    figures: dict[str, float] = json.loads(out)
    assert set(figures) == {"cpu_ms_per_mount", "wall_ms_per_mount"}
    assert figures["cpu_ms_per_mount"] > 0 and figures["wall_ms_per_mount"] > 0
    return figures


@pytest.fixture
def proxied() -> Iterator[list[FaultProxy]]:
    proxies: list[FaultProxy] = []
    yield proxies
    for proxy in proxies:
        proxy.close()


def test_vault_logs_in_once_per_mount_and_reads_each_object(
    binary: Path, proxied: list[FaultProxy]
) -> None:
    from tests.support.openbao import AUTH_MOUNT, bench_env

    with bench_env(OBJECTS) as env:
        proxy = FaultProxy.in_front_of(env.go_baseline_args["-addr"])
        proxied.append(proxy)
        run(binary, "vault", {**env.go_baseline_args, "-addr": proxy.url()})
    paths = sorted(s.request.method + " " + s.request.path for s in proxy.seen())
    expected = [f"POST /v1/auth/{AUTH_MOUNT}/login"] * MOUNTS + [
        f"GET /v1/secret/data/bench/s{i}" for i in range(OBJECTS) for _ in range(MOUNTS)
    ]
    assert paths == sorted(expected)
    assert proxy.count("forwarded") == len(expected)


def test_aws_assumes_the_role_once_per_mount_and_reads_each_object(
    binary: Path, proxied: list[FaultProxy]
) -> None:
    with cost.aws_env(OBJECTS) as env:
        proxy = FaultProxy.in_front_of(env.go_baseline_args["-endpoint"])
        proxied.append(proxy)
        run(binary, "aws", {**env.go_baseline_args, "-endpoint": proxy.url()})
        prefix = env.go_baseline_args["-name-prefix"]
    operations = sorted(s.request.operation for s in proxy.seen())
    expected = ["AssumeRoleWithWebIdentity"] * MOUNTS + ["GetSecretValue"] * OBJECTS * MOUNTS
    assert operations == sorted(expected)
    bodies = [
        json.loads(s.request.body)["SecretId"]
        for s in proxy.seen(lambda r: r.operation == "GetSecretValue")
    ]
    assert sorted(bodies) == sorted(
        f"{prefix}/secret-{i:03d}" for i in range(OBJECTS) for _ in range(MOUNTS)
    )


def test_azure_gets_a_token_per_mount_and_reads_each_object(binary: Path) -> None:
    from tests.support.azure_standin import AUDIENCE, TENANT, WI_CLIENT, azure_world
    from tests.support.tokens import pod_token

    token = pod_token(AUDIENCE)
    with azure_world() as world:
        world.tokens.federated[WI_CLIENT] = token
        for i in range(OBJECTS):
            world.vault.set_secret(f"bench-{i}", f"value-{i}")
        world.vault.requests.clear()
        run(binary, "azure", {
            "-vault-url": world.vault.url + "/", "-authority": world.tokens.url,
            "-tenant": TENANT, "-client-id": WI_CLIENT, "-assertion": token,
            "-ca-file": str(world.pki.ca_file), "-secret-prefix": "bench-",
        })  # fmt: skip
    # Per mount, as the peer's new credential and client do: MSAL's OpenID
    # discovery and one token request, Key Vault's 401 challenge, then one
    # GET per object.
    assert world.tokens.requests == [
        f"GET /{TENANT}/v2.0/.well-known/openid-configuration",
        f"POST /{TENANT}/oauth2/v2.0/token",
    ] * MOUNTS
    one_mount = [("GET", "/secrets/bench-0/", 401)] + [
        ("GET", f"/secrets/bench-{i}/", 200) for i in range(OBJECTS)
    ]
    assert world.vault.requests == one_mount * MOUNTS
