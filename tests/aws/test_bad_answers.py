"""Answers that are not what the AWS APIs promise, and Retry-After, through a proxy to moto.

An unusable answer (empty, not JSON, the wrong JSON type, cut short, missing
the value or the version) must be retried and then be UNAVAILABLE, never a
successful mount with an empty file; STS answers the parser cannot read are
UNAVAILABLE, not INTERNAL. Messages never quote the value or the pod's token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import grpc
import pytest

from provider.backends.aws import AwsSettings
from tests.aws.conftest import STS_TOKEN, ProviderFactory, attrs
from tests.support.faultproxy import Fault, FaultProxy, Request, http_date
from tests.support.moto import REGION
from tests.support.running import RunningProvider, files_of, versions_of

pytestmark = pytest.mark.aws

VALUE = "Secret-Value-4c1b9e-do-not-leak"
SECRET = "- {objectName: db, objectType: secretsmanager}"
PARAMETER = "- {objectName: /app/p, objectType: ssmparameter}"
JSON = {"Content-Type": "application/x-amz-json-1.1"}
XML = {"Content-Type": "text/xml"}


def aws(operation: str) -> Callable[[Request], bool]:
    return lambda request: request.operation == operation


GET_SECRET = aws("GetSecretValue")
GET_PARAMETERS = aws("GetParameters")
STS_LOGIN = aws("AssumeRoleWithWebIdentity")


def ok(body: bytes, headers: dict[str, str] = JSON) -> Fault:
    """A 200 with ``body`` instead of the real answer."""
    return Fault.answer(200, body, headers)


@pytest.fixture
def proxy(moto_url: str) -> Iterator[FaultProxy]:
    with FaultProxy.in_front_of(moto_url) as running:
        yield running


@pytest.fixture
def via_proxy(make_provider: ProviderFactory, proxy: FaultProxy) -> RunningProvider:
    return make_provider(AwsSettings(region=REGION, endpoint_url=proxy.url()), mount_timeout=8.0)


@pytest.fixture
def seeded(sm: Any, ssm: Any) -> str:
    """The secret's real VersionId."""
    ssm.put_parameter(Name="/app/p", Value=VALUE, Type="SecureString")
    return str(sm.create_secret(Name="db", SecretString=VALUE)["VersionId"])


def _assert_clean(err: grpc.RpcError) -> None:
    details = err.details() or ""
    assert VALUE not in details and VALUE[:12] not in details
    assert STS_TOKEN not in details


BAD_SECRET_ANSWERS = {
    "empty-object": ok(b"{}"),
    "not-json": ok(b"not json"),
    "json-list": ok(b"[1,2,3]"),
    "json-string": ok(b'"x"'),
    "cut-in-half": Fault.cut(0.5),
    "cut-connection": Fault.truncated(0.5),
    "no-value": ok(b'{"Name":"db","VersionId":"v1"}'),
    "value-not-a-string": ok(b'{"SecretString":5,"VersionId":"v1"}'),
    "no-version": ok(b'{"Name":"db","SecretString":"x"}'),
}


@pytest.mark.parametrize("answer", BAD_SECRET_ANSWERS.values(), ids=BAD_SECRET_ANSWERS.keys())
def test_unusable_secret_answer_is_retried_then_unavailable(
    via_proxy: RunningProvider, proxy: FaultProxy, seeded: str, answer: Fault,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="provider")
    proxy.set(replace(answer, match=GET_SECRET))
    err = via_proxy.mount_error(attrs(SECRET))
    assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()
    assert err.details().startswith("BackendUnavailable: object 'db'"), err.details()
    _assert_clean(err)
    assert VALUE[:12] not in caplog.text and STS_TOKEN not in caplog.text
    # Every attempt of the retry policy met the bad answer, none hidden in botocore.
    assert proxy.count(match=GET_SECRET, faulted=True) == 4


@pytest.mark.parametrize("answer", BAD_SECRET_ANSWERS.values(), ids=BAD_SECRET_ANSWERS.keys())
def test_one_unusable_secret_answer_then_the_real_one(
    via_proxy: RunningProvider, proxy: FaultProxy, seeded: str, answer: Fault
) -> None:
    proxy.set(replace(answer, match=GET_SECRET, times=1))
    response = via_proxy.mount(attrs(SECRET))
    assert files_of(response) == {"db": (0o644, VALUE.encode())}
    assert versions_of(response) == {"db": seeded}
    assert proxy.count(match=GET_SECRET, faulted=True) == 1
    assert proxy.count(match=GET_SECRET) == 2


BAD_PARAMETER_ANSWERS = {
    "empty-object": ok(b"{}"),
    "not-json": ok(b"not json"),
    "json-list": ok(b"[1]"),
    "cut-in-half": Fault.cut(0.5),
    "no-value": ok(b'{"Parameters":[{"Name":"/app/p","Version":1}]}'),
    "no-version": ok(b'{"Parameters":[{"Name":"/app/p","Value":"x"}]}'),
    "odd-invalid-list": ok(b'{"Parameters":[],"InvalidParameters":[{"x":1}]}'),
}


@pytest.mark.parametrize(
    "answer", BAD_PARAMETER_ANSWERS.values(), ids=BAD_PARAMETER_ANSWERS.keys()
)
def test_unusable_parameter_answer_is_unavailable_not_empty_or_missing(
    via_proxy: RunningProvider, proxy: FaultProxy, seeded: str, answer: Fault
) -> None:
    proxy.set(replace(answer, match=GET_PARAMETERS))
    err = via_proxy.mount_error(attrs(PARAMETER))
    assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()
    assert "'/app/p'" in err.details()
    _assert_clean(err)
    assert proxy.count(match=GET_PARAMETERS, faulted=True) == 4
    proxy.clear()
    response = via_proxy.mount(attrs(PARAMETER))
    assert files_of(response) == {"_app_p": (0o644, VALUE.encode())}  # '/' -> '_', as AWS's
    assert versions_of(response) == {"_app_p": "1"}


BAD_STS_ANSWERS = {
    "503-json": Fault.answer(503, b'{"message":"busy"}'),
    "429-json": Fault.answer(429, b'{"message":"busy"}'),
    "500-json": Fault.answer(500, b'{"message":"busy"}'),
    "xml-cut-in-half": Fault.cut(0.5),
    "cut-connection": Fault.truncated(0.5),
    "200-not-xml": ok(b"{}"),
    "200-no-credentials": ok(
        b'<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/'
        b'2011-06-15/"><AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResult>'
        b"</AssumeRoleWithWebIdentityResponse>",
        XML,
    ),
}


@pytest.mark.parametrize("answer", BAD_STS_ANSWERS.values(), ids=BAD_STS_ANSWERS.keys())
def test_unreadable_sts_answer_is_retried_then_unavailable(
    via_proxy: RunningProvider, proxy: FaultProxy, seeded: str, answer: Fault,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="provider")
    proxy.set(replace(answer, match=STS_LOGIN))
    err = via_proxy.mount_error(attrs(SECRET))
    assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()
    assert "AssumeRoleWithWebIdentity" in err.details() and "app-role" in err.details()
    details = err.details()
    assert "SecretAccessKey" not in details and "SessionToken" not in details
    _assert_clean(err)
    # botocore puts the raw (cut) STS body in its exception: it reaches no log either.
    assert "SecretAccessKey" not in caplog.text and STS_TOKEN not in caplog.text
    assert proxy.count(match=STS_LOGIN, faulted=True) == 4
    assert proxy.count(match=GET_SECRET) == 0  # no read without credentials
    proxy.clear()  # the fault clears: the next mount logs in and reads at once
    assert files_of(via_proxy.mount(attrs(SECRET))) == {"db": (0o644, VALUE.encode())}


def _retry_gap(proxy: FaultProxy) -> float:
    first, second = (seen.at for seen in proxy.seen(GET_SECRET))
    return second - first


def _throttled(status: int, retry_after: str) -> Fault:
    return Fault.answer(
        status, b'{"__type":"ThrottlingException","message":"Rate exceeded"}',
        {**JSON, "Retry-After": retry_after}, match=GET_SECRET,
    )


@pytest.mark.parametrize(
    "retry_after", [lambda: "1", lambda: http_date(2)], ids=["delta-seconds", "http-date"]
)
def test_retry_after_is_honoured(
    via_proxy: RunningProvider, proxy: FaultProxy, seeded: str, retry_after: Callable[[], str]
) -> None:
    via_proxy.mount(attrs(SECRET))  # warm: STS is not part of the measured gap
    proxy.reset_counts()
    proxy.set(replace(_throttled(400, retry_after()), times=1))
    assert files_of(via_proxy.mount(attrs(SECRET))) == {"db": (0o644, VALUE.encode())}
    gap = _retry_gap(proxy)
    assert 0.95 <= gap < 3.0, gap  # told 1 s (or a date 1-2 s away); backoff alone is ~0.1 s


def test_retry_after_beyond_the_deadline_fails_at_once(
    make_provider: ProviderFactory, proxy: FaultProxy, seeded: str
) -> None:
    running = make_provider(
        AwsSettings(region=REGION, endpoint_url=proxy.url()), mount_timeout=5.0
    )
    running.mount(attrs(SECRET))
    proxy.reset_counts()
    proxy.set(_throttled(429, "30"))
    started = time.monotonic()
    err = running.mount_error(attrs(SECRET))
    assert time.monotonic() - started < 2.5  # no point waiting past the deadline
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert err.details().startswith("Throttled: object 'db'")
    assert proxy.count(match=GET_SECRET, faulted=True) == 1
