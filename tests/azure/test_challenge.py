"""Key Vault's bearer challenge as the provider reads it (provider.backends.azure.challenge),
parsed as the Key Vault SDK's HttpChallenge parses the same headers."""

from __future__ import annotations

import asyncio
import base64

import pytest

from provider.backends.azure.challenge import (
    Challenge,
    ChallengeMismatch,
    Challenges,
    check_resource,
    origin,
    parse,
)
from provider.backends.azure.clients import VaultClient
from provider.backends.azure.errors import translate
from provider.backends.azure.objects import ObjectType
from provider.backends.azure.transport import Pools
from provider.codes import ErrorCode
from provider.errors import InvalidRequest

pytestmark = pytest.mark.azure

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", '
         'resource="https://vault.azure.net"',
         Challenge("https://vault.azure.net/.default", TENANT)),
        (f'Bearer authorization_uri="https://login.microsoftonline.com/{TENANT}/oauth2", '
         'scope="https://vault.azure.net/.default"',
         Challenge("https://vault.azure.net/.default", TENANT)),
        ('Bearer authorization="https://adfs.contoso.com/adfs", resource="https://vault.local"',
         Challenge("https://vault.local/.default", "adfs")),
        ('Bearer authorization="https://login.microsoftonline.com/", resource="https://v.net"',
         Challenge("https://v.net/.default", None)),
    ],
    ids=["resource", "scope-and-authorization-uri", "adfs", "no-tenant"],
)
def test_a_challenge_names_scope_and_tenant(header: str, expected: Challenge) -> None:
    assert parse(header) == expected


def test_a_claims_challenge_carries_its_claims() -> None:
    claims = '{"access_token":{"nbf":{"essential":true,"value":"1"}}}'
    encoded = base64.urlsafe_b64encode(claims.encode()).decode().rstrip("=")
    found = parse(f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", '
                  f'error="insufficient_claims", claims="{encoded}"')
    assert found is not None and found.claims == claims and found.tenant == TENANT


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", 'Bearer resource="https://vault.azure.net"', "Basic realm=x"]
)
def test_no_usable_challenge(header: str | None) -> None:
    assert parse(header) is None


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://app-kv.vault.azure.net/secrets/x", True),
        ("https://app-kv.vault.azure.net:443/secrets/x", True),
        ("https://APP-KV.VAULT.AZURE.NET/secrets/x", True),
        ("https://vault.azure.net/secrets/x", False),  # the resource itself is no vault
        ("https://app-kv.vault.azure.net.evil.example/secrets/x", False),
        ("https://127.0.0.1:8443/secrets/x", False),
    ],
)
def test_the_resource_must_be_the_vaults_domain(url: str, ok: bool) -> None:
    asked = Challenge("https://vault.azure.net/.default", TENANT)
    if ok:
        check_resource(asked, url)
    else:
        with pytest.raises(ChallengeMismatch):
            check_resource(asked, url)


def test_origins_drop_default_ports_and_case() -> None:
    assert origin("https://KV.vault.azure.net:443/x?y") == "https://kv.vault.azure.net"
    assert origin("https://localhost:8443/x") == "https://localhost:8443"


def test_no_token_goes_to_a_vault_over_plain_http() -> None:
    pools = Pools(ca_file="", connect_timeout=1, read_timeout=1, max_connections=1)
    asked: list[str] = []

    class Tokens:
        async def token(self, scope: str, tenant: str | None, claims: str | None = None) -> str:
            asked.append(scope)
            return "t"

    client = VaultClient(ObjectType.SECRET, "http://kv.example", Tokens(), pools=pools,
                         challenges=Challenges(), verify_challenge_resource=False)
    with pytest.raises(Exception) as caught:
        asyncio.run(client._token("http://kv.example/secrets/x",
                                  Challenge("https://v.net/.default", None)))
    assert asked == []
    err = translate(caught.value, subject="object 'x'", operation="GetSecret")
    assert isinstance(err, InvalidRequest) and err.code == ErrorCode.ProviderMisconfigured
