"""What both driver lines send: `secrets` shapes, attribute shapes, rotation, concurrency."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from provider import logs
from provider.request import TOKENS
from tests.aws.conftest import STS_TOKEN, attrs
from tests.support.moto import ROLE_ARN
from tests.support.running import RunningProvider, files_of, pod_attributes, versions_of
from tests.support.tokens import pod_token

pytestmark = pytest.mark.aws

SM = "objectType: secretsmanager"
ONE = f"- {{objectName: db, {SM}}}"
TOKEN_JSON = json.dumps(
    {"sts.amazonaws.com": {"token": STS_TOKEN, "expirationTimestamp": "2099-01-01T00:00:00Z"}}
)


@pytest.mark.parametrize(
    "secrets",
    [
        pytest.param(None, id="null-v1.6"),
        pytest.param({}, id="empty-object-v1.5"),
        pytest.param({"awsAccessKeyId": "ignored", "other": "value"}, id="map"),
    ],
)
def test_secrets_shapes(provider: RunningProvider, sm: Any, secrets: dict[str, str] | None) -> None:
    sm.create_secret(Name="db", SecretString="x")
    resp = provider.mount(attrs(ONE), secrets=secrets)
    assert files_of(resp) == {"db": (0o644, b"x")}


def test_tokens_arriving_in_secrets_only(provider: RunningProvider, sm: Any) -> None:
    sm.create_secret(Name="db", SecretString="x")
    a = attrs(ONE, tokens={})
    assert TOKENS not in a
    resp = provider.mount(a, secrets={TOKENS: TOKEN_JSON})
    assert files_of(resp) == {"db": (0o644, b"x")}


def test_tokens_in_both_places(provider: RunningProvider, sm: Any) -> None:
    """Kubernetes >= 1.35: the driver copies the tokens key from `secrets` into attributes."""
    sm.create_secret(Name="db", SecretString="x")
    resp = provider.mount(attrs(ONE), secrets={TOKENS: TOKEN_JSON})
    assert files_of(resp) == {"db": (0o644, b"x")}


@pytest.mark.parametrize(
    ("secrets_wire", "code"),
    [
        pytest.param("[1, 2]", grpc.StatusCode.INVALID_ARGUMENT, id="array"),
        pytest.param("{not json", grpc.StatusCode.INVALID_ARGUMENT, id="malformed"),
        pytest.param('{"k": 1}', grpc.StatusCode.INVALID_ARGUMENT, id="non-string-value"),
    ],
)
def test_bad_secrets_field(
    provider: RunningProvider, secrets_wire: str, code: grpc.StatusCode
) -> None:
    from provider.v1alpha1 import service_pb2, service_pb2_grpc

    with grpc.insecure_channel(f"unix:{provider.socket()}") as channel:
        stub = service_pb2_grpc.CSIDriverProviderStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Mount(
                service_pb2.MountRequest(
                    attributes=json.dumps(attrs(ONE)),
                    secrets=secrets_wire,
                    target_path="/tmp/t",
                    permission="420",
                ),
                timeout=10,
            )
    assert info.value.code() == code
    assert info.value.details().startswith("InvalidRequest: secrets")


def v15_attributes() -> dict[str, str]:
    """Driver v1.5.x: no secretProviderClass / ephemeral keys."""
    a = attrs(ONE)
    del a["secretProviderClass"], a["csi.storage.k8s.io/ephemeral"]
    return a


def test_v15_attributes_with_current_object_version(provider: RunningProvider, sm: Any) -> None:
    first = sm.create_secret(Name="db", SecretString="one")["VersionId"]
    resp = provider.mount(v15_attributes(), secrets={})
    assert versions_of(resp) == {"db": first}
    second = sm.put_secret_value(SecretId="db", SecretString="two")["VersionId"]
    # Rotation on v1.5.x: the reconciler passes the last versions; the answer is complete anyway.
    resp = provider.mount(v15_attributes(), secrets={}, current_versions=versions_of(resp))
    assert files_of(resp) == {"db": (0o644, b"two")}
    assert versions_of(resp) == {"db": second}
    # Unknown or stale hints change nothing either.
    resp = provider.mount(
        v15_attributes(), secrets={}, current_versions={"db": "stale", "gone": "1"}
    )
    assert versions_of(resp) == {"db": second}


def test_go_escaped_attributes(provider: RunningProvider, sm: Any) -> None:
    """Go's encoding/json escapes <, >, & as \\u003c...: parsed, never string-compared."""
    sm.create_secret(Name="a&b<c>", SecretString="x")
    from provider.v1alpha1 import service_pb2, service_pb2_grpc

    text = json.dumps(attrs(f"- {{objectName: 'a&b<c>', {SM}}}"))
    text = text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    with grpc.insecure_channel(f"unix:{provider.socket()}") as channel:
        resp = service_pb2_grpc.CSIDriverProviderStub(channel).Mount(
            service_pb2.MountRequest(
                attributes=text, secrets="null", target_path="/tmp/t", permission="420"
            ),
            timeout=10,
        )
    assert files_of(resp) == {"a&b<c>": (0o644, b"x")}


def test_version_rpc(provider: RunningProvider) -> None:
    from provider.v1alpha1 import service_pb2, service_pb2_grpc

    with grpc.insecure_channel(f"unix:{provider.socket()}") as channel:
        answer = service_pb2_grpc.CSIDriverProviderStub(channel).Version(
            service_pb2.VersionRequest(version="v1alpha1"), timeout=5
        )
    assert answer.version == "v1alpha1"
    assert answer.runtime_name and answer.runtime_version


# -- concurrency ---------------------------------------------------------------


def test_fifty_concurrent_mounts(provider: RunningProvider, sm: Any, ssm: Any) -> None:
    expected: dict[str, tuple[int, bytes]] = {}
    lines = []
    for i in range(5):
        sm.create_secret(Name=f"s{i}", SecretString=f"secret-{i}")
        ssm.put_parameter(Name=f"/p{i}", Value=f"param-{i}", Type="SecureString")
        lines += [
            f"- {{objectName: s{i}, {SM}}}",
            f"- {{objectName: /p{i}, objectType: ssmparameter}}",
        ]
        expected[f"s{i}"] = (0o644, f"secret-{i}".encode())
        expected[f"_p{i}"] = (0o644, f"param-{i}".encode())
    objects = "\n".join(lines)

    def one(n: int) -> dict[str, tuple[int, bytes]]:
        a = pod_attributes(
            {"objects": objects, "roleArn": ROLE_ARN},
            pod=f"app-{n}",
            service_account=f"sa-{n % 5}",
            tokens={"sts.amazonaws.com": pod_token("sts.amazonaws.com", "default", f"sa-{n % 5}")},
        )
        resp = provider.mount(a, timeout=60)
        assert len(resp.object_version) == 10
        return files_of(resp)

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(one, range(50)))
    assert all(r == expected for r in results)


# -- no secrets in logs or messages ---------------------------------------------

SECRET_VALUES = ["correct-horse-battery-staple", "Sup3r$ecretP@ss", "s3cr3t-json-value-42"]
NODE_SECRET = "node-publish-secret-value-77"
PLAIN_TOKEN = "plain-opaque-token-0123456789"


@pytest.fixture
def provider_logs(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """The provider's own logging setup (JSON, debug), plus pytest's capture at DEBUG."""
    root = logging.getLogger()
    saved = (
        root.handlers[:],
        root.level,
        {n: logging.getLogger(n).level for n in ("botocore", "boto3", "urllib3", "grpc")},
    )
    logs.configure("debug", "json")
    buffer = io.StringIO()
    root.handlers[0].setStream(buffer)  # type: ignore[attr-defined]
    root.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    try:
        yield buffer
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)


def test_no_secret_or_token_in_logs_or_messages(
    provider: RunningProvider,
    sm: Any,
    ssm: Any,
    provider_logs: io.StringIO,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sm.create_secret(Name="plain", SecretString=SECRET_VALUES[0])
    sm.create_secret(Name="json", SecretString=json.dumps({"pw": SECRET_VALUES[2]}))
    ssm.put_parameter(Name="/p", Value=SECRET_VALUES[1], Type="SecureString")
    ssm.put_parameter(Name="/notjson", Value=SECRET_VALUES[1], Type="SecureString")
    caplog.clear()
    messages: list[str] = []
    good = f"""
- {{objectName: plain, {SM}}}
- {{objectName: json, {SM}, jmesPath: [{{path: pw, objectAlias: pw}}]}}
- {{objectName: /p, objectType: ssmparameter}}
"""
    resp = provider.mount(attrs(good), secrets={"k": NODE_SECRET})
    assert SECRET_VALUES[0].encode() in files_of(resp)["plain"][1]  # the test can see secrets
    # An opaque token proves no identity: refused, and never quoted.
    err = provider.mount_error(
        attrs(good, tokens={"sts.amazonaws.com": PLAIN_TOKEN}), secrets={"k": NODE_SECRET}
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    messages.append(err.details())
    failing = [
        (
            "- {objectName: /notjson, objectType: ssmparameter,\n"
            "   jmesPath: [{path: a, objectAlias: a}]}",
            {},
        ),
        (f"- {{objectName: json, {SM}, jmesPath: [{{path: nope, objectAlias: a}}]}}", {}),
        (f"- {{objectName: missing, {SM}}}", {}),
        (f"- {{objectName: plain, {SM}, objectVersionLabel: NOPE}}", {}),
        (good, {"usePodIdentity": "true"}),
        (f"- {{objectName: plain, {SM}, bogus: '{PLAIN_TOKEN}'}}", {}),
    ]
    for objects, params in failing:
        for tokens in ({"sts.amazonaws.com": STS_TOKEN}, {"sts.amazonaws.com": PLAIN_TOKEN}):
            err = provider.mount_error(
                attrs(objects, tokens=tokens, **params), secrets={"k": NODE_SECRET}
            )
            messages.append(err.details())
    assert len(messages) == 13
    captured = "\n".join(
        [
            provider_logs.getvalue(),
            *messages,
            *(r.getMessage() + json.dumps(vars(r), default=str) for r in caplog.records),
        ]
    )
    assert "mount failed" in provider_logs.getvalue()  # the capture really saw the provider
    assert "mount succeeded" in provider_logs.getvalue()
    for value in [*SECRET_VALUES, NODE_SECRET, PLAIN_TOKEN, STS_TOKEN]:
        assert value not in captured, value
