"""Vault tokens: one login per identity, never shared, re-acquired before expiry and on 403."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from provider.backends.vault import VaultTls
from provider.backends.vault.credentials import TokenKey, VaultToken, token_cache, token_from_login
from tests.support.running import RunningProvider, files_of
from tests.vault.conftest import KNOWN_SECRET, Vault, backend_of, cached_token

pytestmark = pytest.mark.vault

Attrs = Callable[..., dict[str, str]]
APP = {"roleName": "app",
       "objects": "- objectName: pw\n  secretPath: secret/data/app\n  secretKey: password"}
OTHER = {"roleName": "other",
         "objects": "- objectName: o\n  secretPath: secret/data/other\n  secretKey: value"}


def test_second_mount_does_not_log_in_again(provider: RunningProvider, attrs: Attrs) -> None:
    provider.mount(attrs(APP))
    backend = backend_of(provider)
    assert backend.tokens.stats().loads == 1
    for _ in range(3):
        assert files_of(provider.mount(attrs(APP)))["pw"][1] == KNOWN_SECRET.encode()
    assert backend.tokens.stats().loads == 1


def test_each_identity_logs_in_itself(provider: RunningProvider, attrs: Attrs,
                                      vault: Vault) -> None:
    provider.mount(attrs(APP))
    provider.mount(attrs(OTHER, sa="other"))
    backend = backend_of(provider)
    assert backend.tokens.stats().loads == 2
    assert len(backend.tokens) == 2
    app, other = cached_token(provider, vault), cached_token(provider, vault, sa="other")
    assert app is not None and other is not None
    assert app.token != other.token


def test_concurrent_mounts_of_one_identity_log_in_once(provider: RunningProvider,
                                                       attrs: Attrs) -> None:
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: provider.mount(attrs(APP)), range(8)))
    assert all(files_of(r)["pw"][1] == KNOWN_SECRET.encode() for r in results)
    assert backend_of(provider).tokens.stats().loads == 1


def test_relogin_once_when_the_cached_token_is_revoked(provider: RunningProvider,
                                                       attrs: Attrs, vault: Vault) -> None:
    provider.mount(attrs(APP))
    backend = backend_of(provider)
    cached = cached_token(provider, vault)
    vault.root().auth.token.revoke(cached.token)
    assert files_of(provider.mount(attrs(APP)))["pw"][1] == KNOWN_SECRET.encode()
    assert backend.tokens.stats().loads == 2
    fresh = cached_token(provider, vault)
    assert fresh.token != cached.token


def test_token_is_kept_for_two_thirds_of_its_ttl() -> None:
    clock = [1000.0]
    cache = token_cache(clock=lambda: clock[0])
    cache.put(_key("a"), VaultToken("t", 3600))  # the role's token_ttl
    clock[0] += 3600 * 0.6
    assert cache.peek(_key("a")) is not None
    clock[0] += 3600 * 0.1  # past 2/3 of the TTL: the next mount logs in again
    assert cache.peek(_key("a")) is None


def test_a_different_vault_config_is_a_different_token(provider: RunningProvider,
                                                       attrs: Attrs, vault: Vault) -> None:
    provider.mount(attrs(APP))
    provider.mount(attrs(APP | {"vaultAddress": vault.address.replace("127.0.0.1", "localhost")}))
    assert backend_of(provider).tokens.stats().loads == 2


# -- the cache itself ----------------------------------------------------------------


def _key(sa: str) -> TokenKey:
    return TokenKey("ns", sa, "http://v", "", "kubernetes", "r", "vault", VaultTls())


def test_cache_keeps_a_newer_token_on_stale_invalidate() -> None:
    cache = token_cache()
    first = cache.put(_key("a"), VaultToken("t1", 0))
    cache.invalidate(_key("a"), first)
    second = cache.put(_key("a"), VaultToken("t2", 0))
    cache.invalidate(_key("a"), first)  # a late 403 for the old token
    assert cache.peek(_key("a")) is second


def test_cache_is_bounded() -> None:
    cache = token_cache(max_entries=2)
    for sa in ("a", "b", "c"):
        cache.put(_key(sa), VaultToken("t", 0))
    assert len(cache) == 2
    assert cache.peek(_key("a")) is None and cache.peek(_key("c")) is not None


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        pytest.param({"auth": {"client_token": "t", "lease_duration": 300}}, 200.0, id="ttl"),
        pytest.param({"auth": {"client_token": "t", "lease_duration": 0}}, float("inf"),
                     id="no-expiry"),
        pytest.param({"auth": None}, None, id="no-auth"),
        pytest.param({"auth": {"client_token": ""}}, None, id="empty-token"),
    ],
)
def test_token_from_login(answer: dict[str, object], expected: float | None) -> None:
    found = token_from_login(answer)
    if expected is None:
        assert found is None
    else:
        assert found is not None and found.keep_for == pytest.approx(expected)
