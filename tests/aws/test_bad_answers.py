"""Answers that are not what the AWS APIs promise, and Retry-After, through a proxy to moto.

An unusable answer (empty, not JSON, the wrong JSON type, cut short, missing
the value or the version) must be retried and then be UNAVAILABLE, never a
successful mount with an empty file; STS answers the parser cannot read are
UNAVAILABLE, not INTERNAL. Messages never quote the value or the pod's token.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from provider.backends.aws import AwsSettings
from tests.aws.conftest import STS_TOKEN, ProviderFactory, attrs
from tests.support.bad_answers import Answer, BadAnswers, aws, bad_answers
from tests.support.moto import REGION
from tests.support.running import RunningProvider, files_of, versions_of

pytestmark = pytest.mark.aws

VALUE = "Secret-Value-4c1b9e-do-not-leak"
SECRET = "- {objectName: db, objectType: secretsmanager}"
PARAMETER = "- {objectName: /app/p, objectType: ssmparameter}"
JSON = (("Content-Type", "application/x-amz-json-1.1"),)
XML = (("Content-Type", "text/xml"),)


@pytest.fixture
def proxy(moto_url: str) -> Iterator[BadAnswers]:
    with bad_answers(moto_url) as state:
        yield state


@pytest.fixture
def via_proxy(make_provider: ProviderFactory, proxy: BadAnswers) -> RunningProvider:
    return make_provider(AwsSettings(region=REGION, endpoint_url=proxy.url), mount_timeout=8.0)


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
    "empty-object": Answer(body=b"{}", headers=JSON),
    "not-json": Answer(body=b"not json", headers=JSON),
    "json-list": Answer(body=b"[1,2,3]", headers=JSON),
    "json-string": Answer(body=b'"x"', headers=JSON),
    "cut-in-half": Answer(cut=0.5),
    "cut-connection": Answer(cut=0.5, keep_length=True),
    "no-value": Answer(body=b'{"Name":"db","VersionId":"v1"}', headers=JSON),
    "value-not-a-string": Answer(body=b'{"SecretString":5,"VersionId":"v1"}', headers=JSON),
    "no-version": Answer(body=b'{"Name":"db","SecretString":"x"}', headers=JSON),
}


@pytest.mark.parametrize("answer", BAD_SECRET_ANSWERS.values(), ids=BAD_SECRET_ANSWERS.keys())
def test_unusable_secret_answer_is_retried_then_unavailable(
    via_proxy: RunningProvider, proxy: BadAnswers, seeded: str, answer: Answer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="provider")
    rule = proxy.when(aws("GetSecretValue"), answer)
    err = via_proxy.mount_error(attrs(SECRET))
    assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()
    assert err.details().startswith("BackendUnavailable: object 'db'"), err.details()
    _assert_clean(err)
    assert VALUE[:12] not in caplog.text and STS_TOKEN not in caplog.text
    assert rule.hits == 4  # every attempt of the retry policy, none hidden in botocore


@pytest.mark.parametrize("answer", BAD_SECRET_ANSWERS.values(), ids=BAD_SECRET_ANSWERS.keys())
def test_one_unusable_secret_answer_then_the_real_one(
    via_proxy: RunningProvider, proxy: BadAnswers, seeded: str, answer: Answer
) -> None:
    rule = proxy.when(aws("GetSecretValue"), answer, times=1)
    response = via_proxy.mount(attrs(SECRET))
    assert files_of(response) == {"db": (0o644, VALUE.encode())}
    assert versions_of(response) == {"db": seeded}
    assert rule.hits == 1 and len(proxy.arrivals(aws("GetSecretValue"))) == 2


BAD_PARAMETER_ANSWERS = {
    "empty-object": Answer(body=b"{}", headers=JSON),
    "not-json": Answer(body=b"not json", headers=JSON),
    "json-list": Answer(body=b"[1]", headers=JSON),
    "cut-in-half": Answer(cut=0.5),
    "no-value": Answer(body=b'{"Parameters":[{"Name":"/app/p","Version":1}]}', headers=JSON),
    "no-version": Answer(body=b'{"Parameters":[{"Name":"/app/p","Value":"x"}]}', headers=JSON),
    "odd-invalid-list": Answer(body=b'{"Parameters":[],"InvalidParameters":[{"x":1}]}',
                               headers=JSON),
}


@pytest.mark.parametrize(
    "answer", BAD_PARAMETER_ANSWERS.values(), ids=BAD_PARAMETER_ANSWERS.keys()
)
def test_unusable_parameter_answer_is_unavailable_not_empty_or_missing(
    via_proxy: RunningProvider, proxy: BadAnswers, seeded: str, answer: Answer
) -> None:
    rule = proxy.when(aws("GetParameters"), answer)
    err = via_proxy.mount_error(attrs(PARAMETER))
    assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()
    assert "'/app/p'" in err.details()
    _assert_clean(err)
    assert rule.hits == 4
    proxy.clear()
    response = via_proxy.mount(attrs(PARAMETER))
    assert files_of(response) == {"_app_p": (0o644, VALUE.encode())}  # '/' -> '_', as AWS's
    assert versions_of(response) == {"_app_p": "1"}


BAD_STS_ANSWERS = {
    "503-json": Answer(status=503, body=b'{"message":"busy"}'),
    "429-json": Answer(status=429, body=b'{"message":"busy"}'),
    "500-json": Answer(status=500, body=b'{"message":"busy"}'),
    "xml-cut-in-half": Answer(cut=0.5),
    "cut-connection": Answer(cut=0.5, keep_length=True),
    "200-not-xml": Answer(body=b"{}", headers=JSON),
    "200-no-credentials": Answer(
        body=b'<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/'
        b'2011-06-15/"><AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResult>'
        b"</AssumeRoleWithWebIdentityResponse>",
        headers=XML,
    ),
}


@pytest.mark.parametrize("answer", BAD_STS_ANSWERS.values(), ids=BAD_STS_ANSWERS.keys())
def test_unreadable_sts_answer_is_retried_then_unavailable(
    via_proxy: RunningProvider, proxy: BadAnswers, seeded: str, answer: Answer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="provider")
    rule = proxy.when(aws("AssumeRoleWithWebIdentity"), answer)
    err = via_proxy.mount_error(attrs(SECRET))
    assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()
    assert "AssumeRoleWithWebIdentity" in err.details() and "app-role" in err.details()
    details = err.details()
    assert "SecretAccessKey" not in details and "SessionToken" not in details
    _assert_clean(err)
    # botocore puts the raw (cut) STS body in its exception: it reaches no log either.
    assert "SecretAccessKey" not in caplog.text and STS_TOKEN not in caplog.text
    assert rule.hits == 4
    proxy.clear()  # the fault clears: the next mount logs in and reads at once
    assert files_of(via_proxy.mount(attrs(SECRET))) == {"db": (0o644, VALUE.encode())}


def _retry_gap(proxy: BadAnswers) -> float:
    first, second = proxy.arrivals(aws("GetSecretValue"))
    return second - first


@pytest.mark.parametrize(
    "retry_after",
    [lambda: "1", lambda: email.utils.formatdate(time.time() + 2, usegmt=True)],
    ids=["delta-seconds", "http-date"],
)
def test_retry_after_is_honoured(
    via_proxy: RunningProvider, proxy: BadAnswers, seeded: str, retry_after: Any
) -> None:
    via_proxy.mount(attrs(SECRET))  # warm: STS is not part of the measured gap
    proxy.clear()
    throttled = Answer(
        status=400,
        body=b'{"__type":"ThrottlingException","message":"Rate exceeded"}',
        headers=(*JSON, ("Retry-After", retry_after())),
    )
    proxy.when(aws("GetSecretValue"), throttled, times=1)
    assert files_of(via_proxy.mount(attrs(SECRET))) == {"db": (0o644, VALUE.encode())}
    gap = _retry_gap(proxy)
    assert 0.95 <= gap < 3.0, gap  # told 1 s (or a date 1-2 s away); backoff alone is ~0.1 s


def test_retry_after_beyond_the_deadline_fails_at_once(
    make_provider: ProviderFactory, proxy: BadAnswers, seeded: str
) -> None:
    running = make_provider(AwsSettings(region=REGION, endpoint_url=proxy.url), mount_timeout=5.0)
    running.mount(attrs(SECRET))
    proxy.clear()
    throttled = Answer(
        status=429,
        body=b'{"__type":"ThrottlingException","message":"Rate exceeded"}',
        headers=(*JSON, ("Retry-After", "30")),
    )
    rule = proxy.when(aws("GetSecretValue"), throttled)
    started = time.monotonic()
    err = running.mount_error(attrs(SECRET))
    assert time.monotonic() - started < 2.5  # no point waiting past the deadline
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert err.details().startswith("Throttled: object 'db'")
    assert rule.hits == 1
