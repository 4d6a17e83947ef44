"""Vault tokens: one login per identity, never shared, re-acquired before expiry and on 403."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from provider.backends.vault import VaultTls
from provider.backends.vault.auth import TokenCache, TokenKey, VaultToken, token_from_login
from tests.support.running import RunningProvider, files_of
from tests.vault.conftest import KNOWN_SECRET, Vault, backend_of

pytestmark = pytest.mark.vault

Attrs = Callable[..., dict[str, str]]
APP = {"roleName": "app",
       "objects": "- objectName: pw\n  secretPath: secret/data/app\n  secretKey: password"}
OTHER = {"roleName": "other",
         "objects": "- objectName: o\n  secretPath: secret/data/other\n  secretKey: value"}


def test_second_mount_does_not_log_in_again(provider: RunningProvider, attrs: Attrs) -> None:
    provider.mount(attrs(APP))
    backend = backend_of(provider)
    assert backend.tokens.logins == 1
    for _ in range(3):
        assert files_of(provider.mount(attrs(APP)))["pw"][1] == KNOWN_SECRET.encode()
    assert backend.tokens.logins == 1


def test_each_identity_logs_in_itself(provider: RunningProvider, attrs: Attrs) -> None:
    provider.mount(attrs(APP))
    provider.mount(attrs(OTHER, sa="other"))
    backend = backend_of(provider)
    assert backend.tokens.logins == 2
    keys = list(backend.tokens._entries)
    assert {(k.pod_namespace, k.service_account, k.role) for k in keys} == {
        ("default", "app", "app"), ("default", "other", "other")}
    tokens = [t.token for t in backend.tokens._entries.values()]
    assert len(set(tokens)) == 2


def test_concurrent_mounts_of_one_identity_log_in_once(provider: RunningProvider,
                                                       attrs: Attrs) -> None:
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: provider.mount(attrs(APP)), range(8)))
    assert all(files_of(r)["pw"][1] == KNOWN_SECRET.encode() for r in results)
    assert backend_of(provider).tokens.logins == 1


def test_relogin_once_when_the_cached_token_is_revoked(provider: RunningProvider,
                                                       attrs: Attrs, vault: Vault) -> None:
    provider.mount(attrs(APP))
    backend = backend_of(provider)
    (cached,) = backend.tokens._entries.values()
    vault.root().auth.token.revoke(cached.token)
    assert files_of(provider.mount(attrs(APP)))["pw"][1] == KNOWN_SECRET.encode()
    assert backend.tokens.logins == 2
    (fresh,) = backend.tokens._entries.values()
    assert fresh.token != cached.token


def test_token_is_reacquired_before_it_expires(provider: RunningProvider, attrs: Attrs) -> None:
    provider.mount(attrs(APP))
    backend = backend_of(provider)
    (cached,) = backend.tokens._entries.values()
    assert cached.lease_seconds == 3600  # the role's token_ttl
    real = backend.tokens.clock
    backend.tokens.clock = lambda: real() + cached.lease_seconds * 0.7  # past 2/3 of the TTL
    try:
        provider.mount(attrs(APP))
    finally:
        backend.tokens.clock = real
    assert backend.tokens.logins == 2


def test_a_different_vault_config_is_a_different_token(provider: RunningProvider,
                                                       attrs: Attrs, vault: Vault) -> None:
    provider.mount(attrs(APP))
    provider.mount(attrs(APP | {"vaultAddress": vault.address.replace("127.0.0.1", "localhost")}))
    assert backend_of(provider).tokens.logins == 2


# -- the cache itself ----------------------------------------------------------------


def _key(sa: str) -> TokenKey:
    return TokenKey("ns", sa, "http://v", "", "kubernetes", "r", "vault", VaultTls())


def test_cache_keeps_a_newer_token_on_stale_invalidate() -> None:
    cache = TokenCache()
    first = cache.get(_key("a"), lambda: VaultToken("t1", float("inf"), 0))
    cache.invalidate(_key("a"), first)
    second = cache.get(_key("a"), lambda: VaultToken("t2", float("inf"), 0))
    cache.invalidate(_key("a"), first)  # a late 403 for the old token
    assert cache.get(_key("a"), lambda: VaultToken("t3", float("inf"), 0)) is second
    assert cache.logins == 2


def test_cache_is_bounded() -> None:
    cache = TokenCache(max_entries=2)
    for sa in ("a", "b", "c"):
        cache.get(_key(sa), lambda: VaultToken("t", float("inf"), 0))
    assert [k.service_account for k in cache._entries] == ["b", "c"]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        pytest.param({"auth": {"client_token": "t", "lease_duration": 300}}, 100.0 + 200.0,
                     id="ttl"),
        pytest.param({"auth": {"client_token": "t", "lease_duration": 0}}, float("inf"),
                     id="no-expiry"),
        pytest.param({"auth": None}, None, id="no-auth"),
        pytest.param({"auth": {"client_token": ""}}, None, id="empty-token"),
    ],
)
def test_token_from_login(answer: dict[str, object], expected: float | None) -> None:
    found = token_from_login(answer, 100.0)
    if expected is None:
        assert found is None
    else:
        assert found is not None and found.refresh_at == pytest.approx(expected)
