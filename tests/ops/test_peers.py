"""The real Go peers that bench/cost.py runs beside ours really mount, through our stand-ins.

bench/cost.py's "peer now" column is a figure only if every peer mount did
what a mount does: these run the built peers (bench/peers.py; skipped where
``go`` is missing or the build fails) against OpenBao, moto and the Azure
stand-ins, with their Kubernetes API calls answered by
tests/support/kube_standin.py and their cloud host names led through
tests/support/tls_tunnel.py, and check the files' contents, the object
versions, and what the stand-ins were asked. A peer that fails must make the
bench say so, not print a figure.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bench import cost
from bench.peers import build_peer, run_peer
from tests.support.kube_standin import NAMESPACE, kube_standin

OBJECTS = 3
MOUNTS = 2


def peer_binary(backend: str) -> Path:
    built, why_not = build_peer(backend)
    if built is None:
        pytest.skip(why_not)
    return built


def test_vault_peer_mounts_through_the_standin() -> None:
    import hvac

    from tests.support.openbao import ROOT_TOKEN, bench_env

    binary = peer_binary("vault")
    with bench_env(OBJECTS) as env:
        root = hvac.Client(url=env.parameters["vaultAddress"], token=ROOT_TOKEN)
        expected = {
            f"s{i}": root.secrets.kv.v2.read_secret_version(
                path=f"bench/s{i}", mount_point="secret", raise_on_deleted_version=True
            )["data"]["data"]["value"].encode()
            for i in range(OBJECTS)
        }
        with run_peer("vault", binary, env) as peer:
            params = {**env.parameters, **peer.extra_parameters}
            for i in range(MOUNTS):
                answer = cost.cold_mount(env, params, peer.socket.parent, i, socket=peer.socket)
                assert {f.path: f.contents for f in answer.files} == expected
                # Versions are HMACs with the key from the stand-in's Secret.
                assert sorted(v.id for v in answer.object_version) == sorted(expected)
                assert all(v.version for v in answer.object_version)
            kube = peer.kube
    secrets = f"/api/v1/namespaces/{NAMESPACE}/secrets"
    hmac_secret = f"{secrets}/vault-csi-provider-hmac-key"
    # First mount: not found, created; every later mount reads it once.
    assert kube.requests == [f"GET {hmac_secret}", f"POST {secrets}"] + [f"GET {hmac_secret}"] * (
        MOUNTS - 1
    )
    assert kube.unexpected == []
    stored = kube.secrets[(NAMESPACE, "vault-csi-provider-hmac-key")]
    assert len(base64.b64decode(stored["data"]["key"])) == 32 and stored["immutable"] is True


def test_aws_peer_mounts_through_the_standin_and_the_sts_tunnel() -> None:
    binary = peer_binary("aws")
    with cost.aws_env(OBJECTS) as env:
        prefix = env.go_baseline_args["-name-prefix"]
        with run_peer("aws", binary, env) as peer:
            params = {**env.parameters, **peer.extra_parameters}
            for i in range(MOUNTS):
                answer = cost.cold_mount(env, params, peer.socket.parent, i, socket=peer.socket)
                contents = {f.path: json.loads(f.contents) for f in answer.files}
                assert contents == {
                    f"{prefix}_secret-{n:03d}": {"user": f"u{n}", "password": "p" * 32}
                    for n in range(OBJECTS)
                }
                assert len(answer.object_version) == OBJECTS
            kube, tunnel = peer.kube, peer.tunnel
    assert kube.requests == ["GET /api/v1/namespaces/default/serviceaccounts/app"] * MOUNTS
    assert kube.unexpected == []
    # A new STS client (and connection) per mount, to the real STS host name, ended here.
    assert tunnel.tunnels == ["sts.us-east-1.amazonaws.com:443"] * MOUNTS
    assert tunnel.refused == []


def test_a_failing_peer_mount_is_reported_not_measured() -> None:
    from tests.support.openbao import bench_env

    binary = peer_binary("vault")
    with bench_env(1) as env:
        env.parameters["roleName"] = "no-such-role"
        with pytest.raises(cost.PeerFailed, match='role "no-such-role" could not be found'):
            cost.peer_cpu_ms("vault", binary, env, 1, 1)


def test_standin_answers_as_the_api_server(tmp_path: Path) -> None:
    with kube_standin(tmp_path) as kube:
        context = ssl.create_default_context(
            cafile=str(tmp_path / "run/secrets/kubernetes.io/serviceaccount/ca.crt")
        )
        base = f"https://127.0.0.1:{kube.port}/api/v1/namespaces/ns"

        def call(method: str, path: str, body: dict[str, Any] | None = None,
                 token: str = kube.token) -> tuple[int, dict[str, Any]]:  # fmt: skip
            request = urllib.request.Request(
                base + path, method=method, data=json.dumps(body).encode() if body else None,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )  # fmt: skip
            try:
                with urllib.request.urlopen(request, context=context) as answer:
                    return answer.status, json.loads(answer.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())

        secret = {"metadata": {"name": "k"}, "data": {"key": base64.b64encode(b"x").decode()}}
        assert call("GET", "/secrets/k", token="wrong")[0] == 401
        code, status = call("GET", "/secrets/k")
        assert (code, status["reason"]) == (404, "NotFound")
        assert call("POST", "/secrets", secret)[0] == 201
        code, status = call("POST", "/secrets", secret)
        assert (code, status["reason"]) == (409, "AlreadyExists")
        code, got = call("GET", "/secrets/k")
        assert code == 200 and got["data"] == secret["data"]
        kube.role_arns[("ns", "app")] = "arn:aws:iam::1:role/r"
        code, account = call("GET", "/serviceaccounts/app")
        assert account["metadata"] == {
            "name": "app", "namespace": "ns",
            "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/r"},
        }  # fmt: skip
        assert call("GET", "/pods/app-0")[0] == 404
    assert kube.unexpected == ["GET /api/v1/namespaces/ns/pods/app-0"]


def test_azure_peer_mounts_through_the_tunnel() -> None:
    from tests.support.azure_standin import AUDIENCE, TENANT, WI_CLIENT, azure_world
    from tests.support.benchenv import BenchEnv
    from tests.support.tokens import pod_token

    binary = peer_binary("azure")
    token = pod_token(AUDIENCE)
    with azure_world() as world:
        world.tokens.federated[WI_CLIENT] = token
        for n in range(OBJECTS):
            world.vault.set_secret(f"bench-{n}", f"value-of-bench-{n}")
        objects = "array:\n" + "".join(
            f"  - |\n    objectName: bench-{n}\n    objectType: secret\n" for n in range(OBJECTS)
        )
        env = BenchEnv(  # as azure_standin.bench_env's, with the world at hand
            backend="azure", settings=None, tokens={AUDIENCE: token},
            parameters={"keyvaultName": "benchvault", "tenantID": TENANT, "clientID": WI_CLIENT,
                        "objects": objects},
            go_baseline_args={"-vault-url": world.vault.url + "/", "-authority": world.tokens.url,
                              "-ca-file": str(world.pki.ca_file)},
        )  # fmt: skip
        world.vault.requests.clear()
        with run_peer("azure", binary, env) as peer:
            for i in range(MOUNTS):
                answer = cost.cold_mount(env, env.parameters, peer.socket.parent, i,
                                         socket=peer.socket)  # fmt: skip
                assert {f.path: f.contents for f in answer.files} == {
                    f"bench-{n}": f"value-of-bench-{n}".encode() for n in range(OBJECTS)
                }
                assert sorted(v.id for v in answer.object_version) == [
                    f"secret/bench-{n}" for n in range(OBJECTS)
                ]
            kube, tunnel = peer.kube, peer.tunnel
    # Per mount, a new credential and client: MSAL's instance and OpenID
    # discovery and one token; Key Vault's 401 challenge, then one GET per object.
    assert world.tokens.requests == [
        "GET /common/discovery/instance",
        f"GET /{TENANT}/v2.0/.well-known/openid-configuration",
        f"POST /{TENANT}/oauth2/v2.0/token",
    ] * MOUNTS
    one_mount = [("GET", "/secrets/bench-0/", 401)] + [
        ("GET", f"/secrets/bench-{n}/", 200) for n in range(OBJECTS)
    ]
    assert world.vault.requests == one_mount * MOUNTS
    assert kube.requests == []  # no Kubernetes API call with workload identity
    assert tunnel.refused == []
    assert sorted(set(tunnel.tunnels)) == [
        "benchvault.vault.azure.net:443", "login.microsoftonline.com:443"
    ]
