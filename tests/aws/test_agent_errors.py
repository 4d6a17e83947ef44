"""The EKS Pod Identity agent's HTTP answers, mapped once in aws/errors.py.

The agent is plain HTTP read with urllib (no botocore), so its statuses have
their own rows in the backend's one translator: a refusal is AuthFailed and
never retried, anything else transient.
"""

from __future__ import annotations

import io
import urllib.error
from email.message import Message

import grpc
import pytest

from provider.backends.aws import AwsSettings
from provider.backends.aws.errors import agent_refused, translate
from provider.errors import PermissionDenied, Unavailable
from tests.aws.conftest import PodIdentityAgent, ProviderFactory, attrs
from tests.support.mapping import assert_mapped
from tests.support.moto import REGION

pytestmark = pytest.mark.aws

AGENT = "the EKS Pod Identity agent at http://agent"


def _http(status: int) -> urllib.error.HTTPError:
    return urllib.error.HTTPError("http://agent", status, "x", Message(), io.BytesIO(b"{}"))


@pytest.mark.parametrize(
    ("exc", "expected", "refused"),
    [
        (_http(400), PermissionDenied, True),
        (_http(403), PermissionDenied, True),
        (_http(404), PermissionDenied, True),
        (_http(429), Unavailable, False),
        (_http(500), Unavailable, False),
        (_http(503), Unavailable, False),
        (urllib.error.URLError("refused"), Unavailable, False),
        (ConnectionResetError(), Unavailable, False),
        (TimeoutError(), Unavailable, False),
    ],
    ids=lambda v: getattr(v, "code", type(v).__name__),
)
def test_agent_answers_are_mapped(
    exc: OSError, expected: type[Exception], refused: bool
) -> None:
    err = translate(exc, subject=AGENT, operation="PodIdentity")
    assert type(err) is expected
    assert agent_refused(exc) is refused
    assert_mapped(err, type(exc), AGENT)
    if refused:
        assert err.code == "AuthFailed"


@pytest.mark.parametrize(("status", "code"), [(500, "UNAVAILABLE"), (403, "PERMISSION_DENIED")])
def test_agent_status_reaches_the_pod(
    make_provider: ProviderFactory,
    moto_url: str,
    pod_identity_agent: PodIdentityAgent,
    status: int,
    code: str,
) -> None:
    pod_identity_agent.status = status
    running = make_provider(
        AwsSettings(
            region=REGION, endpoint_url=moto_url, pod_identity_endpoint=pod_identity_agent.url
        )
    )
    err = running.mount_error(
        attrs(
            "- {objectName: db, objectType: secretsmanager}",
            usePodIdentity="true",
            tokens={"pods.eks.amazonaws.com": pod_identity_agent.expected_token},
        )
    )
    assert err.code() is getattr(grpc.StatusCode, code)
    assert f"HTTP {status}" in err.details()
    assert "EKS Pod Identity agent" in err.details()
    # A refusal is definite (one request); a 500 is retried within the deadline.
    assert (pod_identity_agent.requests == 1) is (status == 403)
