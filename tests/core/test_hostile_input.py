"""Hostile input never wedges the server: YAML bombs, huge classes, malformed JSON.

Each case goes through the real socket of a running provider, and while the
bad mount is handled, ``Version`` and ``/healthz`` must keep answering: the
provider is shared by every pod of the node. Endpoints are the closed loopback
port, so a valid class fails fast with UNAVAILABLE and nothing leaves the machine.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import grpc
import pytest
import yaml
from yaml.constructor import SafeConstructor

from provider import dialect
from provider.v1alpha1 import service_pb2, service_pb2_grpc
from tests.support.running import RunningProvider, pod_attributes, settings_for
from tests.support.tokens import pod_token

CLOSED = "http://127.0.0.1:9"
TOKENS = {a: pod_token(a) for a in ("sts.amazonaws.com", "vault", "api://AzureADTokenExchange")}


def bomb(leaf: str) -> str:
    """~400 bytes of nested anchors: 9^8 (43 million) leaves once expanded."""
    lines = ["- &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 8):
        lines.append(f"- &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    lines.append(f"- {leaf}")
    return "\n".join(lines) + "\n"


CLASSES: dict[str, dict[str, str]] = {
    "aws": {
        "region": "us-east-1",
        "objects": bomb("{objectType: secretsmanager, objectName: *a7}"),
    },
    "vault": {
        "roleName": "app",
        "vaultAddress": CLOSED,
        "objects": bomb("{objectName: x, secretPath: secret/data/x, secretArgs: {k: *a7}}"),
    },
    "azure": {
        "keyvaultName": "kv1",
        "tenantID": "t",
        "clientID": "c",
        "objects": "array:\n" + "".join(f"  {line}\n" for line in bomb("*a7").splitlines()),
    },
}


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProvider]:
    from provider.backends.aws import AwsSettings
    from provider.backends.azure import AzureSettings

    backends = {
        "aws": AwsSettings(region="us-east-1", endpoint_url=CLOSED, pod_identity_endpoint=CLOSED),
        "azure": AzureSettings(
            authority_host="https://127.0.0.1:9", keyvault_endpoint="https://127.0.0.1:9/"
        ),
    }
    settings = settings_for(
        tmp_path_factory.mktemp("hostile-input"),
        backends,
        mount_timeout=5.0,
        kube_api=CLOSED,
        health_addr="127.0.0.1:0",
        max_objects=1000,
        plan_cache_mib=1,
    )
    with RunningProvider(settings) as running:
        yield running


@pytest.fixture(scope="module")
def stub(provider: RunningProvider) -> Iterator[Any]:
    with grpc.insecure_channel(f"unix:{provider.socket()}") as channel:
        yield service_pb2_grpc.CSIDriverProviderStub(channel)


def raw_mount(stub: Any, attributes: str, secrets: str = "null", timeout: float = 20) -> Any:
    request = service_pb2.MountRequest(
        attributes=attributes, secrets=secrets, target_path="/tmp/t", permission="420"
    )
    return stub.Mount(request, timeout=timeout)


def error_of(stub: Any, attributes: str, secrets: str = "null") -> grpc.RpcError:
    try:
        raw_mount(stub, attributes, secrets)
    except grpc.RpcError as exc:
        assert not any(t in (exc.details() or "") for t in TOKENS.values())
        return exc
    raise AssertionError("the mount succeeded")


def stays_alive_while(provider: RunningProvider, stub: Any, work: Future[Any]) -> int:
    """Call Version and /healthz until ``work`` is done; each must answer within 2 s."""
    url = f"http://127.0.0.1:{provider.app.port('/healthz')}/healthz"
    answered = 0
    while not work.done():
        stub.Version(service_pb2.VersionRequest(version="v1alpha1"), timeout=2)
        with urllib.request.urlopen(url, timeout=2) as response:
            assert response.status == 200
        answered += 1
    return answered


@pytest.mark.parametrize("dialect_name", list(CLASSES))
def test_alias_bomb_is_refused_and_the_server_keeps_answering(
    provider: RunningProvider, stub: Any, dialect_name: str
) -> None:
    attributes = json.dumps(pod_attributes(CLASSES[dialect_name], tokens=TOKENS))
    with ThreadPoolExecutor(1) as pool:
        work = pool.submit(error_of, stub, attributes)
        stays_alive_while(provider, stub, work)
        exc = work.result()
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.details()
    assert "parameter 'objects' is refused" in exc.details()
    assert "aliases expand it by" in exc.details()


@pytest.mark.parametrize(
    ("objects", "expected"),
    [
        ("[" * 30_000 + "]" * 30_000, "nests deeper than 100 levels"),  # libyaml segfaulted
        ("- &a [*a]\n", "refers to a node that contains it"),
        ("- &a0 [x]\n" + "".join(f"- &a{i} [*a{i - 1}]\n" for i in range(1, 200)), "deeper"),
        ("- objectName: \ud800\n", "lone surrogate"),
    ],
)
def test_malformed_yaml_is_invalid_argument(stub: Any, objects: str, expected: str) -> None:
    params = {"backend": "vault", "roleName": "r", "vaultAddress": CLOSED, "objects": objects}
    exc = error_of(stub, json.dumps(pod_attributes(params, tokens=TOKENS)))
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.details()
    assert expected in exc.details()


def test_shared_anchors_within_bounds_still_work() -> None:
    # The Go peers accept anchors; so do we, as long as they do not explode.
    problems = dialect.Problems()
    doc = dialect.parse_yaml(
        "- &d {objectType: secretsmanager, objectName: a}\n- {<<: *d, objectName: b}\n- *d\n",
        "parameter 'objects'",
        problems,
    )
    assert not list(problems)
    assert doc == [
        {"objectType": "secretsmanager", "objectName": "a"},
        {"objectType": "secretsmanager", "objectName": "b"},
        {"objectType": "secretsmanager", "objectName": "a"},
    ]


def aws_class(count: int, prefix: str = "app") -> dict[str, str]:
    objects = [
        {"objectName": f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{prefix}-{i}",
         "objectType": "secretsmanager", "objectAlias": f"{prefix}-{i}"}
        for i in range(count)
    ]  # fmt: skip
    # No `backend` parameter: selection must sniff the objects (the AWS way).
    return {"region": "us-east-1", "objects": yaml.safe_dump(objects)}


def test_a_huge_class_is_refused_without_stalling_the_server(
    provider: RunningProvider, stub: Any
) -> None:
    attributes = json.dumps(pod_attributes(aws_class(12_000), tokens=TOKENS))
    with ThreadPoolExecutor(1) as pool:
        work = pool.submit(error_of, stub, attributes)
        answered = stays_alive_while(provider, stub, work)
        exc = work.result()
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.details()
    assert "lists 12000 objects, more than the 1000" in exc.details()
    assert "--max-objects" in exc.details()
    assert answered >= 1


def test_a_class_is_parsed_once_and_its_plan_cached(
    provider: RunningProvider, stub: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = aws_class(50, prefix="once")
    # Documents built, counted at PyYAML's own (public) constructor step: the
    # number of top-level items of each.
    built: list[int] = []
    lock = threading.Lock()
    real = SafeConstructor.construct_document

    def counting(self: SafeConstructor, node: yaml.Node) -> Any:
        with lock:
            built.append(len(node.value))
        return real(self, node)

    monkeypatch.setattr(SafeConstructor, "construct_document", counting)
    plans = provider.app.pipeline.plans
    before = plans.stats()
    for pod in ("a", "b", "c"):
        # Each pod's mount reaches the closed port: the plan was made and used.
        exc = error_of(stub, json.dumps(pod_attributes(params, pod=pod, tokens=TOKENS)))
        assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc.details()
    after = plans.stats()
    # Selection sniffed the objects for AWS and the plan read them: one parse
    # for both, and none for the next two pods (plan cache).
    assert built == [50]
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 2)


def test_the_plan_cache_is_bounded_in_bytes(provider: RunningProvider, stub: Any) -> None:
    # plan_cache_mib=1 and a plan counted at twice its text: at most two of
    # these ~200 KiB classes fit.
    for n in range(4):
        params = aws_class(1000, prefix=f"bytes{n}")
        exc = error_of(stub, json.dumps(pod_attributes(params, tokens=TOKENS)))
        assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc.details()
    stats = provider.app.pipeline.plans.stats()
    assert stats.bytes <= 1024 * 1024
    assert 1 <= stats.entries <= 3
    assert stats.evictions >= 1


DEEP = "[" * 100_000 + "]" * 100_000
HUGE_NUMBER = "1" * 5000


@pytest.mark.parametrize(
    ("attributes", "secrets", "expected"),
    [
        (DEEP, "null", "attributes is not acceptable JSON"),
        (json.dumps({"a": "b"})[:-1] + f', "n": {HUGE_NUMBER}}}', "null",
         "attributes is not acceptable JSON"),
        (json.dumps({"a": "b"}), f'{{"k": {HUGE_NUMBER}}}', "secrets is not acceptable JSON"),
        (json.dumps({"a": "b"}), f'{{"k": {DEEP}}}', "secrets is not acceptable JSON"),
        # JSON escapes of a lone surrogate, in a value and in a key.
        ('{"objects": "- x: \\ud800"}', "null", "not valid Unicode"),
        ('{"\\udfff": "x"}', "null", "not valid Unicode"),
        (json.dumps({"csi.storage.k8s.io/serviceAccount.tokens": f'{{"vault": {DEEP}}}'}),
         "null", "is not acceptable JSON"),
        (json.dumps({"csi.storage.k8s.io/serviceAccount.tokens": f'{{"v": {HUGE_NUMBER}}}'}),
         "null", "is not acceptable JSON"),
        (json.dumps({"csi.storage.k8s.io/serviceAccount.tokens":
                     '{"vault": {"token": "\\ud800"}}'}), "null", "not valid Unicode"),
    ],
)  # fmt: skip
def test_malformed_json_from_the_driver_is_invalid_argument(
    stub: Any, attributes: str, secrets: str, expected: str
) -> None:
    exc = error_of(stub, attributes, secrets)
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.details()
    assert expected in exc.details()
