"""The rotation cache against moto: reads per identity and window, counted at the backend."""

from __future__ import annotations

import time
from typing import Any

import grpc
import pytest

from provider.backends.aws import AwsSettings
from provider.backends.aws.credentials import MAX_CLIENTS_PER_IDENTITY, MAX_STS_CLIENTS
from tests.rotation.conftest import Aws, ProviderFactory
from tests.support.faultproxy import Fault
from tests.support.moto import REGION, ROLE_ARN, seed_client
from tests.support.running import RunningProvider, files_of, pod_attributes, versions_of
from tests.support.tokens import pod_token

pytestmark = pytest.mark.aws

OBJECTS = (
    "- {objectName: rot-a, objectType: secretsmanager}\n"
    "- {objectName: rot-b, objectType: secretsmanager}\n"
    "- {objectName: /rot/p, objectType: ssmparameter}\n"
)


def _provider(make: ProviderFactory, aws: Aws, **server: Any) -> RunningProvider:
    return make({"aws": AwsSettings(region=REGION, endpoint_url=aws.proxy.url())}, **server)


def _attrs(params: dict[str, str], *, sa: str = "app", pod: str = "app-0",
           namespace: str = "default") -> dict[str, str]:
    return pod_attributes(
        {"roleArn": ROLE_ARN, "objects": OBJECTS, **params},
        namespace=namespace, service_account=sa, pod=pod,
        tokens={"sts.amazonaws.com": pod_token("sts.amazonaws.com", namespace, sa)},
    )


@pytest.fixture(scope="module", autouse=True)
def _seeded(aws: Aws) -> None:
    sm = seed_client(aws.url, "secretsmanager")
    sm.create_secret(Name="rot-a", SecretString="a-1")
    sm.create_secret(Name="rot-b", SecretString="b-1")
    seed_client(aws.url, "ssm").put_parameter(Name="/rot/p", Value="p-1", Type="SecureString")


def test_pods_of_two_identities_make_one_read_per_object_each(
    make_provider: ProviderFactory, aws: Aws
) -> None:
    provider = _provider(make_provider, aws)
    before = {op: aws.calls(op) for op in
              ("GetSecretValue", "GetParameters", "AssumeRoleWithWebIdentity")}
    params = {"refreshInterval": "1m"}
    answers = [provider.mount(_attrs(params, pod=f"app-{i}")) for i in range(10)]
    answers += [provider.mount(_attrs(params, sa="other", pod=f"other-{i}")) for i in range(5)]
    assert all(files_of(a) == files_of(answers[0]) for a in answers)
    assert files_of(answers[0])["rot-a"][1] == b"a-1"
    got = {op: aws.calls(op) - n for op, n in before.items()}
    # Two identities: 2 secrets and 1 parameter batch each, one STS login each.
    assert got == {"GetSecretValue": 4, "GetParameters": 2, "AssumeRoleWithWebIdentity": 2}


def test_a_new_version_shows_after_the_window(make_provider: ProviderFactory, aws: Aws) -> None:
    provider = _provider(make_provider, aws)
    params = {"refreshInterval": "1s"}
    first = provider.mount(_attrs(params))
    sm = seed_client(aws.url, "secretsmanager")
    sm.put_secret_value(SecretId="rot-b", SecretString="b-2")
    poll = provider.mount(_attrs(params, pod="app-1"), current_versions=versions_of(first))
    assert files_of(poll) == files_of(first)
    assert versions_of(poll) == versions_of(first)
    time.sleep(1.1)
    later = provider.mount(_attrs(params, pod="app-2"), current_versions=versions_of(first))
    assert files_of(later)["rot-b"][1] == b"b-2"
    assert versions_of(later)["rot-b"] != versions_of(first)["rot-b"]
    assert versions_of(later)["rot-a"] == versions_of(first)["rot-a"]


def test_a_stalled_sts_call_does_not_lock_the_identity_out(
    make_provider: ProviderFactory, aws: Aws
) -> None:
    provider = _provider(make_provider, aws, mount_timeout=2.0)
    provider.mount(_attrs({}, sa="warm-up"))  # boto3 imported, clients built
    login = Fault.stalled(match=lambda r: r.operation == "AssumeRoleWithWebIdentity", times=1)
    with aws.proxy.faulty(login):
        err = provider.mount_error(_attrs({}, sa="stalled"))
        assert err.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)
        assert aws.proxy.count("stalled") == 1
        started = time.monotonic()
        assert files_of(provider.mount(_attrs({}, sa="stalled")))["rot-a"][1] == b"a-1"
        assert time.monotonic() - started < 1.5


def test_regions_named_by_classes_keep_a_bounded_number_of_clients(
    make_provider: ProviderFactory, aws: Aws
) -> None:
    """A class author picks any region: each costs clients, so their number is bounded."""
    provider = _provider(make_provider, aws)
    regions = [f"eu-west-{i}" for i in range(1, MAX_STS_CLIENTS + 9)]
    for i, region in enumerate(regions):  # a new identity logs in through each region's STS
        provider.mount_error(_attrs({"region": region}, sa=f"sa-{i}"))  # not seeded there
    for region in regions[:8]:  # one identity reading in many regions
        provider.mount_error(_attrs({"region": region}, sa="roamer"))
    backend = provider.run(provider.app.registry.get("aws"))
    assert len(backend.sts_clients) == MAX_STS_CLIENTS
    assert backend.sts_clients.stats().evictions >= len(regions) - MAX_STS_CLIENTS
    roamer = backend.identities.peek(("default", "roamer", "irsa", ROLE_ARN))
    assert roamer is not None and roamer.clients() == MAX_CLIENTS_PER_IDENTITY


@pytest.mark.parametrize(
    "token",
    [
        pod_token("sts.amazonaws.com", "default", "other"),
        pod_token("sts.amazonaws.com", "team-b", "app"),
        pod_token("sts.amazonaws.com", ttl=-30),
        pod_token("vault"),
        "opaque",
    ],
    ids=["other-account", "other-namespace", "expired", "other-audience", "garbage"],
)
def test_a_forged_identity_gets_nothing_from_the_caches(
    make_provider: ProviderFactory, aws: Aws, token: str
) -> None:
    provider = _provider(make_provider, aws, refresh_default=600.0)
    provider.mount(_attrs({}))  # app's credentials and objects are cached now
    before = aws.proxy.count()
    forged = _attrs({}) | {
        "csi.storage.k8s.io/serviceAccount.tokens":
            f'{{"sts.amazonaws.com": {{"token": "{token}", '
            '"expirationTimestamp": "2099-01-01T00:00:00Z"}}'
    }
    err = provider.mount_error(forged)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert err.details().startswith("TokenMismatch: ")
    assert "a-1" not in err.details()
    assert aws.proxy.count() == before  # refused before any cache or backend
