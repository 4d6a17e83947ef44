"""Every error class reaches the driver with its gRPC code and a message starting with its code."""

from __future__ import annotations

import socket
import time
from typing import Any

import grpc
import pytest

from provider.backends.aws import AwsSettings
from tests.aws.conftest import STS_TOKEN, ProviderFactory, RegionProxy, attrs
from tests.support.moto import REGION
from tests.support.running import RunningProvider, files_of
from tests.support.tokens import pod_token

pytestmark = pytest.mark.aws

SM = "objectType: secretsmanager"


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens here any more


def _assert_error(err: grpc.RpcError, code: grpc.StatusCode, prefix: str, *needles: str) -> None:
    assert err.code() == code, err.details()
    assert err.details().startswith(prefix + ": "), err.details()
    for needle in needles:
        assert needle in err.details()


@pytest.mark.parametrize(
    ("objects", "needles"),
    [
        pytest.param(
            f"- {{objectName: missing, {SM}}}",
            ["object 'missing'", "ResourceNotFoundException"],
            id="secret",
        ),
        pytest.param(
            f"- {{objectName: db, {SM}, objectVersion: 00000000-0000-0000-0000-000000000000}}",
            ["object 'db'"],
            id="secret-version",
        ),
        pytest.param(
            f"- {{objectName: db, {SM}, objectVersionLabel: NOPE}}",
            ["object 'db'"],
            id="secret-label",
        ),
        pytest.param(
            "- {objectName: /missing, objectType: ssmparameter}", ["'/missing'"], id="parameter"
        ),
        pytest.param(
            "- {objectName: /p, objectType: ssmparameter, objectVersion: '9'}",
            ["'/p'"],
            id="parameter-version",
        ),
        pytest.param(
            "- {objectName: /p, objectType: ssmparameter, objectVersionLabel: nope}",
            ["'/p'"],
            id="parameter-label",
        ),
    ],
)
def test_not_found(
    provider: RunningProvider, sm: Any, ssm: Any, objects: str, needles: list[str]
) -> None:
    sm.create_secret(Name="db", SecretString="x")
    ssm.put_parameter(Name="/p", Value="x", Type="String")
    err = provider.mount_error(attrs(objects))
    _assert_error(err, grpc.StatusCode.NOT_FOUND, "ObjectNotFound", *needles)


def test_not_found_wins_over_success_and_fails_whole_mount(
    provider: RunningProvider, sm: Any
) -> None:
    sm.create_secret(Name="good", SecretString="x")
    err = provider.mount_error(attrs(f"- {{objectName: good, {SM}}}\n- {{objectName: bad, {SM}}}"))
    _assert_error(err, grpc.StatusCode.NOT_FOUND, "ObjectNotFound", "object 'bad'")


@pytest.mark.parametrize(
    ("tokens", "params", "audience"),
    [
        pytest.param({}, {}, "sts.amazonaws.com", id="irsa-no-tokens"),
        pytest.param({"vault": STS_TOKEN}, {}, "sts.amazonaws.com", id="irsa-other-audience"),
        pytest.param(
            {"sts.amazonaws.com": STS_TOKEN},
            {"usePodIdentity": "true"},
            "pods.eks.amazonaws.com",
            id="pod-identity",
        ),
    ],
)
def test_missing_token(
    provider: RunningProvider, tokens: dict[str, str], params: dict[str, str], audience: str
) -> None:
    err = provider.mount_error(attrs(f"- {{objectName: db, {SM}}}", tokens=tokens, **params))
    _assert_error(
        err, grpc.StatusCode.INVALID_ARGUMENT, "MissingToken", repr(audience), "tokenRequests"
    )


def test_unavailable_after_bounded_retries(make_provider: ProviderFactory) -> None:
    running = make_provider(AwsSettings(region=REGION, endpoint_url=_closed_port_url()))
    started = time.monotonic()
    err = running.mount_error(attrs(f"- {{objectName: db, {SM}}}"), timeout=10)
    _assert_error(err, grpc.StatusCode.UNAVAILABLE, "BackendUnavailable", "cannot reach AWS")
    assert time.monotonic() - started < 3  # four quick attempts, not the whole deadline


def test_unavailable_retries_are_bounded(
    make_provider: ProviderFactory, sm: Any, region_proxy: RegionProxy
) -> None:
    sm.create_secret(Name="db", SecretString="x")
    running = make_provider(AwsSettings(region=REGION, endpoint_url=region_proxy.url))
    region_proxy.failing.add(REGION)
    err = running.mount_error(attrs(f"- {{objectName: db, {SM}}}"), timeout=30)
    _assert_error(
        err, grpc.StatusCode.UNAVAILABLE, "BackendUnavailable", "object 'db'", "ServiceUnavailable"
    )
    # The provider's policy: 4 attempts in all; botocore adds no hidden retries.
    assert region_proxy.count("GetSecretValue", REGION) == 4


def test_unavailable_inside_short_grpc_deadline(
    make_provider: ProviderFactory, sm: Any, region_proxy: RegionProxy
) -> None:
    sm.create_secret(Name="db", SecretString="x")
    running = make_provider(AwsSettings(region=REGION, endpoint_url=region_proxy.url))
    region_proxy.failing.add(REGION)
    region_proxy.delay = 0.3
    started = time.monotonic()
    err = running.mount_error(attrs(f"- {{objectName: db, {SM}}}"), timeout=1.5)
    elapsed = time.monotonic() - started
    # The provider answers before the caller's deadline, with the real (retryable) fault.
    _assert_error(err, grpc.StatusCode.UNAVAILABLE, "BackendUnavailable", "ServiceUnavailable")
    assert elapsed < 1.5
    assert 2 <= region_proxy.count("GetSecretValue", REGION) <= 4  # bounded by the deadline


def test_throttling_is_retried_then_succeeds(
    make_provider: ProviderFactory, sm: Any, region_proxy: RegionProxy
) -> None:
    """A region that recovers during the retries: the mount succeeds."""
    import threading

    sm.create_secret(Name="db", SecretString="x")
    running = make_provider(AwsSettings(region=REGION, endpoint_url=region_proxy.url))
    region_proxy.failing.add(REGION)
    threading.Timer(0.15, region_proxy.failing.clear).start()
    resp = running.mount(attrs(f"- {{objectName: db, {SM}}}"))
    assert files_of(resp) == {"db": (0o644, b"x")}


def test_permission_denied_pod_identity_agent_403(
    make_provider: ProviderFactory, moto_url: str, pod_identity_agent: Any
) -> None:
    running = make_provider(
        AwsSettings(
            region=REGION, endpoint_url=moto_url, pod_identity_endpoint=pod_identity_agent.url
        )
    )
    pod_identity_agent.status = 403
    err = running.mount_error(
        attrs(
            f"- {{objectName: db, {SM}}}",
            usePodIdentity="true",
            tokens={"pods.eks.amazonaws.com": pod_token("pods.eks.amazonaws.com")},
        )
    )
    _assert_error(err, grpc.StatusCode.PERMISSION_DENIED, "AuthFailed", "HTTP 403")


def test_permission_denied_service_account_without_role(
    make_provider: ProviderFactory, fake_kube: Any
) -> None:
    running = make_provider(kube_api=fake_kube.url)
    err = running.mount_error(
        attrs(
            f"- {{objectName: db, {SM}}}",
            role=False,
            tokens={"sts.amazonaws.com": pod_token("sts.amazonaws.com", "default", "no-role")},
        )
        | {"csi.storage.k8s.io/serviceAccount.name": "no-role"}
    )
    _assert_error(
        err,
        grpc.StatusCode.PERMISSION_DENIED,
        "AuthFailed",
        "default/no-role",
        "eks.amazonaws.com/role-arn",
    )


def test_permission_denied_backend_403(
    make_provider: ProviderFactory, sm: Any, region_proxy: RegionProxy
) -> None:
    """AWS answering AccessDeniedException (moto enforces no IAM by default: the proxy says it)."""
    sm.create_secret(Name="db", SecretString="x")
    running = make_provider(AwsSettings(region=REGION, endpoint_url=region_proxy.url))
    region_proxy.deny = {REGION}
    err = running.mount_error(attrs(f"- {{objectName: db, {SM}}}"))
    _assert_error(
        err,
        grpc.StatusCode.PERMISSION_DENIED,
        "AccessDenied",
        "object 'db'",
        "AccessDeniedException",
    )
    assert region_proxy.count("GetSecretValue") == 1  # never retried


def test_invalid_argument_for_json_needed(provider: RunningProvider, sm: Any) -> None:
    sm.create_secret(Name="db", SecretString="not json at all")
    err = provider.mount_error(
        attrs(f"- {{objectName: db, {SM}, jmesPath: [{{path: a, objectAlias: a}}]}}")
    )
    _assert_error(
        err,
        grpc.StatusCode.INVALID_ARGUMENT,
        "InvalidSecretFormat",
        "object 'db'",
        "not valid JSON",
    )
    assert "not json at all" not in err.details()


def test_invalid_argument_for_jmes_no_match(provider: RunningProvider, sm: Any) -> None:
    sm.create_secret(Name="db", SecretString='{"a": 1}')
    err = provider.mount_error(
        attrs(f"- {{objectName: db, {SM}, jmesPath: [{{path: b, objectAlias: bee}}]}}")
    )
    _assert_error(
        err,
        grpc.StatusCode.INVALID_ARGUMENT,
        "InvalidSecretFormat",
        "object 'db'",
        "'b'",
        "'bee'",
        "matches nothing",
    )


@pytest.mark.parametrize(
    ("expression", "needle"),
    [
        pytest.param("sort(mixed)", "sort() expects array-string or array-number, got ",
                     id="wrong-type"),
        pytest.param("length(n)", "length() expects string or array or object, got number",
                     id="scalar"),
        pytest.param("nofn(@)", "cannot be evaluated over the secret (UnknownFunctionError)",
                     id="unknown-function"),
    ],
)
def test_invalid_argument_for_jmes_that_fails_on_the_value(
    provider: RunningProvider, sm: Any, expression: str, needle: str
) -> None:
    """A runtime JMESPath error names expression, alias and types, never the secret's values."""
    sm.create_secret(Name="db", SecretString='{"mixed": [1, "pa55-Wörd-xyz"], "n": 98765}')
    err = provider.mount_error(
        attrs(f"- {{objectName: db, {SM}, jmesPath: [{{path: '{expression}', objectAlias: out}}]}}")
    )
    _assert_error(
        err, grpc.StatusCode.INVALID_ARGUMENT, "InvalidSecretFormat", "object 'db'", "'out'",
        needle,
    )
    assert "pa55" not in err.details() and "98765" not in err.details()


@pytest.mark.parametrize(
    ("permission", "needle"),
    [
        pytest.param("abc", "not a JSON number", id="not-json"),
        pytest.param("-1", "0 to 511", id="negative"),
        pytest.param("512", "0 to 511", id="too-big"),
        pytest.param('"420"', "0 to 511", id="string"),
        pytest.param("4.2", "0 to 511", id="float"),
    ],
)
def test_invalid_permission(provider: RunningProvider, permission: str, needle: str) -> None:
    err = provider.mount_error(attrs(f"- {{objectName: db, {SM}}}"), permission=permission)
    _assert_error(err, grpc.StatusCode.INVALID_ARGUMENT, "InvalidRequest", "permission", needle)


def test_no_backend_chosen(provider: RunningProvider) -> None:
    err = provider.mount_error(attrs("- {objectName: db}"))
    _assert_error(err, grpc.StatusCode.INVALID_ARGUMENT, "InvalidParameters", "backend")
