"""Azure AD tokens without msal (provider.backends.azure.tokens), against the Azure AD stand-in:
what each request carries, how long a token is kept, and what each answer becomes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from provider.backends.azure.errors import translate
from provider.backends.azure.tokens import EntraTokens, Held, _held
from provider.backends.azure.transport import Pools
from provider.codes import ErrorCode
from provider.errors import InvalidParameters, PermissionDenied, Unavailable
from tests.azure.conftest import POD_TOKEN, SP_SECRET, Seeded
from tests.support.azure_standin import SP_CLIENT, TENANT, WI_CLIENT, AzureWorld

pytestmark = pytest.mark.azure

SCOPE = "https://vault.azure.net/.default"
Run = Callable[[Coroutine[Any, Any, Any]], Any]
CP1 = {"access_token": {"xms_cc": {"values": ["CP1"]}}}


@pytest.fixture
def world(seeded: Seeded) -> Iterator[AzureWorld]:
    yield seeded.world
    seeded.world.tokens.faults.clear()
    seeded.world.tokens.expires_in = 3599


@pytest.fixture
def pools(world: AzureWorld) -> Iterator[Pools]:
    made = Pools(ca_file=str(world.pki.ca_file), connect_timeout=5, read_timeout=5,
                 max_connections=4)
    yield made
    made.close()


@pytest.fixture
def run(pools: Pools) -> Iterator[Run]:
    """One event loop for the whole test (the pools' connections belong to it), closed after
    the pools' connections are."""
    with asyncio.Runner() as runner:
        yield runner.run

        async def close() -> None:
            pools.close()
            await asyncio.sleep(0.05)  # the connections' goodbyes, on this loop

        runner.run(close())


def wi(pools: Pools, world: AzureWorld, assertion: str = POD_TOKEN) -> EntraTokens:
    return EntraTokens(pools, world.tokens.url, TENANT, WI_CLIENT, assertion=lambda: assertion)


def test_workload_identity_asks_with_the_pods_token(
    pools: Pools, world: AzureWorld, run: Run
) -> None:
    token = run(wi(pools, world).token(SCOPE, None))
    assert world.tokens.client_of(token) == WI_CLIENT
    assert world.tokens.requests[-1] == f"POST /{TENANT}/oauth2/v2.0/token"
    form = world.tokens.forms[-1]
    assert json.loads(form.pop("claims")) == CP1  # CAE announced, as azure-identity did
    assert form == {
        "client_id": WI_CLIENT,
        "grant_type": "client_credentials",
        "scope": SCOPE,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": POD_TOKEN,
    }


def test_service_principal_asks_with_its_secret(pools: Pools, world: AzureWorld, run: Run) -> None:
    tokens = EntraTokens(pools, world.tokens.url, TENANT, SP_CLIENT, secret=SP_SECRET)
    assert world.tokens.client_of(run(tokens.token(SCOPE, TENANT))) == SP_CLIENT
    form = world.tokens.forms[-1]
    assert form["client_secret"] == SP_SECRET and "client_assertion" not in form
    assert SP_SECRET not in repr(tokens)


def test_a_token_is_kept_until_shortly_before_it_expires(
    pools: Pools, world: AzureWorld, run: Run
) -> None:
    tokens = wi(pools, world)
    before = len(world.tokens.forms)
    first = run(tokens.token(SCOPE, None))
    assert run(tokens.token(SCOPE, None)) == first
    assert run(tokens.token(SCOPE, TENANT)) != ""
    assert len(world.tokens.forms) - before == 2  # (scope, None) and (scope, TENANT)
    world.tokens.expires_in = 200  # inside the five-minute margin: asked for every time
    short = wi(pools, world)
    before = len(world.tokens.forms)
    assert run(short.token(SCOPE, None)) != run(short.token(SCOPE, None))
    assert len(world.tokens.forms) - before == 2
    assert first not in repr(tokens)


def test_refresh_time_as_msal_sets_it() -> None:
    assert _held({"access_token": "t", "expires_in": 3599}, 1000.0, 200).refresh_on is None
    long = _held({"access_token": "t", "expires_in": "86400"}, 1000.0, 200)
    assert (long.expires_on, long.refresh_on) == (87400.0, 44200.0)
    given = _held({"access_token": "t", "expires_in": 86400, "refresh_in": 600}, 1000.0, 200)
    assert given.refresh_on == 1600.0 and given.due(1600.0) and not given.due(1599.0)
    assert "secret-token" not in repr(Held("secret-token", 1.0))


def test_a_claims_challenge_gets_a_new_token_with_the_claims(
    pools: Pools, world: AzureWorld, run: Run
) -> None:
    tokens = wi(pools, world)
    first = run(tokens.token(SCOPE, None))
    claims = '{"access_token":{"nbf":{"essential":true,"value":"1726000000"}}}'
    assert run(tokens.token(SCOPE, None, claims)) != first
    sent = json.loads(world.tokens.forms[-1]["claims"])
    assert sent == {"access_token": {"nbf": {"essential": True, "value": "1726000000"},
                                     "xms_cc": {"values": ["CP1"]}}}


def test_another_tenant_is_refused_without_a_request(
    pools: Pools, world: AzureWorld, run: Run
) -> None:
    before = len(world.tokens.forms)
    with pytest.raises(Exception) as caught:
        run(wi(pools, world).token(SCOPE, "another-tenant"))
    assert len(world.tokens.forms) == before
    err = translate(caught.value, subject="object 'x'", operation="GetSecret")
    assert isinstance(err, PermissionDenied) and err.code == ErrorCode.AuthFailed
    assert "not configured to acquire tokens for tenant 'another-tenant'" in str(err)


def test_a_tenant_that_cannot_be_one_is_a_parameter_problem(
    pools: Pools, world: AzureWorld
) -> None:
    with pytest.raises(InvalidParameters, match="tenantID"):
        EntraTokens(pools, world.tokens.url, "../common", WI_CLIENT, assertion=lambda: "t")


@pytest.fixture
def fails_with(pools: Pools, world: AzureWorld, run: Run) -> Callable[..., Any]:
    """Azure AD answers ``status``/``body`` once: what the token request's failure becomes."""

    def fail(status: int, body: Any, headers: dict[str, str] | None = None) -> Any:
        world.tokens.fail_next(status, body, headers)
        with pytest.raises(Exception) as caught:
            run(wi(pools, world).token(SCOPE, None))
        return translate(caught.value, subject="object 'x'", operation="GetSecret")

    return fail


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, {}),
        (200, b"not json"),
        (200, {"access_token": "tok-9f8e7d"}),  # no expires_in
        (200, {"access_token": 7, "expires_in": 3599}),
        (500, {"message": "busy tok-9f8e7d"}),
        (502, b"<html>bad gateway</html>"),
    ],
    ids=["200-empty", "200-not-json", "200-no-expiry", "200-token-not-text", "500-message",
         "502-html"],
)
def test_neither_a_token_nor_an_error_is_transient_and_never_quoted(
    fails_with: Callable[..., Any], status: int, body: Any
) -> None:
    err = fails_with(status, body)
    assert isinstance(err, Unavailable) and err.code == ErrorCode.BackendUnavailable, err
    assert "neither a token nor an error" in str(err) and "tok-9f8e7d" not in str(err)


@pytest.mark.parametrize(
    ("status", "error", "number"),
    [
        (401, "invalid_client", 7000215),
        (400, "invalid_request", 90002),
        (400, "unauthorized_client", 700016),
        (200, "invalid_grant", 70021),
    ],
)
def test_azure_ad_refusals_are_denials_quoting_the_aadsts_code(
    fails_with: Callable[..., Any], status: int, error: str, number: int
) -> None:
    body = {"error": error, "error_description": f"AADSTS{number}: refused.\r\nTrace ID: 1",
            "error_codes": [number]}
    err = fails_with(status, body)
    assert isinstance(err, PermissionDenied) and err.code == ErrorCode.AuthFailed
    assert f"AADSTS{number}" in str(err) and error in str(err) and "Trace ID" not in str(err)


@pytest.mark.parametrize(
    ("status", "code"), [(429, ErrorCode.Throttled), (503, ErrorCode.BackendUnavailable)]
)
def test_throttled_or_failing_azure_ad_is_transient_with_its_retry_after(
    fails_with: Callable[..., Any], status: int, code: str
) -> None:
    body = {"error": "temporarily_unavailable", "error_description": "AADSTS50196: slow down."}
    err = fails_with(status, body, {"Retry-After": "7"})
    assert isinstance(err, Unavailable) and err.code == code and err.retry_after == 7.0
    assert "AADSTS50196" in str(err)
