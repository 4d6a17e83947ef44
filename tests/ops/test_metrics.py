"""/metrics counts mounts and backend requests with the right labels, and only those."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from provider.backends.aws import AwsSettings
from provider.metrics import Metrics, label
from tests.ops.conftest import STS_TOKEN, aws_attributes, http_get
from tests.support.moto import REGION
from tests.support.running import RunningProvider, settings_for


@pytest.fixture
def running(tmp_path: Path, moto_url: str) -> Iterator[RunningProvider]:
    settings = settings_for(
        tmp_path,
        {"aws": AwsSettings(region=REGION, endpoint_url=moto_url)},
        metrics_addr="127.0.0.1:0",
    )
    with RunningProvider(settings) as provider:
        yield provider


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(provider: RunningProvider) -> tuple[str, Samples]:
    status, text = http_get(provider.app.port("/metrics"), "/metrics")
    assert status == 200
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_a_successful_and_a_failed_mount(
    running: RunningProvider, seeded: dict[str, str]
) -> None:
    ok = running.mount(aws_attributes(*seeded))
    assert len(ok.files) == 2
    err = running.mount_error(aws_attributes("ops/missing"))
    assert err.code() == grpc.StatusCode.NOT_FOUND

    text, samples = scrape(running)
    mounts = "polysecret_mounts_total"
    assert value(samples, mounts, backend="aws", result="success", code="ok") == 1
    assert value(samples, mounts, backend="aws", result="failure", code="ObjectNotFound") == 1
    assert sum(v for (n, _), v in samples.items() if n == mounts) == 2
    hist = "polysecret_mount_duration_seconds_count"
    assert value(samples, hist, backend="aws", result="success") == 1
    assert value(samples, hist, backend="aws", result="failure") == 1
    assert value(samples, "polysecret_mounts_in_flight") == 0

    # Backend requests: every attempt, by operation and code, with latency.
    requests = {
        dict(labels)["operation"] + "/" + dict(labels)["code"]: v
        for (n, labels), v in samples.items()
        if n == "polysecret_backend_requests_total"
    }
    # Exactly what was asked of AWS: one STS call for the one identity (the
    # second mount hits the credential cache, which is not a request), then
    # one GetSecretValue per object.
    assert requests == {
        "AssumeRoleWithWebIdentity/ok": 1,
        "GetSecretValue/ok": 2,
        "GetSecretValue/ObjectNotFound": 1,
    }, requests
    durations = sum(
        v
        for (n, _), v in samples.items()
        if n == "polysecret_backend_request_duration_seconds_count"
    )
    assert durations == sum(requests.values())
    assert value(samples, "process_resident_memory_bytes") > 10 * 2**20
    # One label name for one notion, no failover request here, and no _created series.
    assert all(dict(labels)["failover"] == "false" for (n, labels), _ in samples.items()
               if n == "polysecret_backend_requests_total")
    assert "_created" not in text

    # Nothing of the request is a label or value: names, values, tokens, pods.
    for forbidden in [*seeded, *seeded.values(), "ops/missing", STS_TOKEN, "app-0"]:
        assert forbidden not in text


def test_a_mount_that_fails_before_choosing_a_backend(running: RunningProvider) -> None:
    err = running.mount_error({"objects": "- objectName: x"})
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    _, samples = scrape(running)
    failures = {
        dict(labels)["code"]: v
        for (n, labels), v in samples.items()
        if n == "polysecret_mounts_total" and dict(labels)["backend"] == "unknown"
    }
    assert sum(failures.values()) == 1 and "ok" not in failures


def test_retries_and_in_flight() -> None:
    metrics = Metrics()
    metrics.mount_started()
    metrics.mount_started()
    metrics.backend_retry("vault", "login", "Throttled")
    metrics.backend_retry("aws", "GetSecretValue(failover)", "Throttled")
    metrics.backend_request("aws", "GetSecretValue(failover)", "ok", 0.01)
    metrics.mount_finished("vault", "ok", 0.01)
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for f in text_string_to_metric_families(metrics.render()[2].decode())
        for s in f.samples
    }
    assert samples[("polysecret_mounts_in_flight", frozenset())] == 1
    retry = {"backend": "vault", "operation": "login", "failover": "false", "code": "Throttled"}
    assert samples[("polysecret_backend_retries_total", frozenset(retry.items()))] == 1
    # The failover qualifier is a label of its own, not part of the operation's name.
    failover = {"backend": "aws", "operation": "GetSecretValue", "failover": "true"}
    retried = {**failover, "code": "Throttled"}
    assert samples[("polysecret_backend_retries_total", frozenset(retried.items()))] == 1
    done = {**failover, "code": "ok"}
    assert samples[("polysecret_backend_requests_total", frozenset(done.items()))] == 1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("aws", "aws"),
        ("GetSecretValue", "GetSecretValue"),
        ("vault.login", "vault.login"),
        ("GetSecretValue(failover)", "other"),  # a qualifier is its own label
        ("GET secret/data/prod/db", "other"),
        ("AKx-very-secret", "other"),
        ("prod/db/password", "other"),
        ("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", "other"),
        ("", "other"),
        ("x" * 41, "other"),
        ("has space", "other"),
    ],
    ids=[
            "backend", "operation", "dotted", "qualified", "vault-path", "dashed", "path", "jwt",
            "empty", "long", "space",
        ],
)
def test_label_values_are_closed_identifiers(raw: str, expected: str) -> None:
    assert label(raw) == expected
