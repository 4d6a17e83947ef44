"""The rotation cache against real OpenBao: one read per identity and window, isolation, leases."""

from __future__ import annotations

import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import pytest

from provider.backends.vault import VaultSettings
from provider.backends.vault.transport import MAX_TRANSPORTS
from tests.rotation.conftest import Bao, ProviderFactory
from tests.support.faultproxy import Fault
from tests.support.running import RunningProvider, files_of, versions_of

pytestmark = pytest.mark.vault

APP_OBJECTS = "- objectName: pw\n  secretPath: secret/data/app\n  secretKey: password"
APP = {"roleName": "app", "objects": APP_OBJECTS}
PKI = {
    "roleName": "app",
    "objects": (
        "- objectName: tls.crt\n  secretPath: pki/issue/short\n  secretKey: certificate\n"
        "  method: PUT\n  secretArgs:\n    common_name: app.example.com\n    ttl: 6s\n"
        "- objectName: tls.key\n  secretPath: pki/issue/short\n  secretKey: private_key\n"
        "  method: PUT\n  secretArgs:\n    common_name: app.example.com\n    ttl: 6s\n"
    ),
}


def _provider(make: ProviderFactory, bao: Bao, **server: Any) -> RunningProvider:
    return make({"vault": VaultSettings(address=bao.proxy.url())}, **server)


def _set_password(bao: Bao, value: str) -> None:
    bao.root().secrets.kv.v2.create_or_update_secret(
        path="app", mount_point="secret", secret={"password": value}
    )


def test_many_pods_of_one_identity_share_one_read_per_window(
    make_provider: ProviderFactory, bao: Bao
) -> None:
    provider = _provider(make_provider, bao)
    reads, logins = bao.reads("secret/data/app"), bao.logins()
    params = APP | {"refreshInterval": "1m"}
    first = provider.mount(bao.attrs(params, pod="app-0"))
    for i in range(1, 10):
        again = provider.mount(
            bao.attrs(params, pod=f"app-{i}"), current_versions=versions_of(first)
        )
        assert files_of(again) == files_of(first) == {"pw": (0o644, b"first")}
        assert versions_of(again) == versions_of(first)
    assert bao.reads("secret/data/app") - reads == 1
    assert bao.logins() - logins == 1


def test_a_changed_value_shows_after_the_window_and_not_before(
    make_provider: ProviderFactory, bao: Bao
) -> None:
    provider = _provider(make_provider, bao)
    params = APP | {"refreshInterval": "1500ms"}
    before = provider.mount(bao.attrs(params))
    try:
        _set_password(bao, "second")
        within = provider.mount(bao.attrs(params, pod="app-1"),
                                current_versions=versions_of(before))
        assert files_of(within)["pw"][1] == b"first"
        assert versions_of(within) == versions_of(before)
        time.sleep(1.6)
        after = provider.mount(bao.attrs(params, pod="app-2"),
                               current_versions=versions_of(before))
        assert files_of(after)["pw"][1] == b"second"
        assert versions_of(after) != versions_of(before)
    finally:
        _set_password(bao, "first")


def test_refresh_interval_zero_reads_every_mount(make_provider: ProviderFactory, bao: Bao) -> None:
    provider = _provider(make_provider, bao, refresh_default=60.0)
    reads = bao.reads("secret/data/app")
    for i in range(3):
        provider.mount(bao.attrs(APP | {"refreshInterval": "0"}, pod=f"app-{i}"))
    assert bao.reads("secret/data/app") - reads == 3


def test_the_provider_default_and_maximum_apply(make_provider: ProviderFactory, bao: Bao) -> None:
    provider = _provider(make_provider, bao, refresh_default=60.0, refresh_max=1.0)
    reads = bao.reads("secret/data/app")
    provider.mount(bao.attrs(APP | {"refreshInterval": "10h"}))  # capped at 1 s
    provider.mount(bao.attrs(APP | {"refreshInterval": "10h"}, pod="app-1"))
    assert bao.reads("secret/data/app") - reads == 1
    time.sleep(1.1)
    provider.mount(bao.attrs(APP | {"refreshInterval": "10h"}, pod="app-2"))
    assert bao.reads("secret/data/app") - reads == 2


def test_a_bad_refresh_interval_is_invalid_argument(
    make_provider: ProviderFactory, bao: Bao
) -> None:
    provider = _provider(make_provider, bao)
    err = provider.mount_error(bao.attrs(APP | {"refreshInterval": "soon"}))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "refreshInterval" in err.details()


# -- isolation: a denied pod never gets a cached value ------------------------------


def _cases(bao: Bao) -> list[tuple[str, dict[str, str], bool]]:
    """(name, attributes, reaches Vault): each must be PERMISSION_DENIED."""
    return [
        ("another service account, same role", bao.attrs(APP, sa="intruder"), True),
        ("same name, another namespace", bao.attrs(APP, namespace="team-b"), True),
        ("token of another account", bao.attrs(APP, token=bao.signer.token("other")), False),
        ("expired token", bao.attrs(APP, token=bao.signer.token("app", ttl=-120)), False),
        ("token for another audience",
         bao.attrs(APP, token=bao.signer.token("app", audience="not-vault")), False),
        ("garbage token", bao.attrs(APP, token="not-a-jwt"), False),
        ("a role that denies the path",
         bao.attrs({"roleName": "other", "objects": APP_OBJECTS}, sa="other"), True),
    ]


def test_isolation_matrix(make_provider: ProviderFactory, bao: Bao) -> None:
    provider = _provider(make_provider, bao, refresh_default=600.0)
    warm = provider.mount(bao.attrs(APP))
    assert files_of(warm)["pw"][1] == b"first"
    for name, attrs, reaches_vault in _cases(bao):
        before = bao.proxy.count()
        err = provider.mount_error(attrs)
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED, (name, err.details())
        assert "first" not in err.details(), name
        # A forged identity is refused before anything is asked of Vault or the cache.
        assert (bao.proxy.count() > before) == reaches_vault, name
        # After each denial, the allowed pod is still served, from the cache.
        before = bao.proxy.count()
        again = provider.mount(bao.attrs(APP, pod="app-9"), current_versions=versions_of(warm))
        assert files_of(again) == files_of(warm), name
        assert bao.proxy.count() == before, name
    lookups = provider.app.objects.shared.stats()
    assert lookups.hits >= len(_cases(bao))


def test_a_denial_evicts_that_identitys_entries(make_provider: ProviderFactory, bao: Bao) -> None:
    provider = _provider(make_provider, bao, refresh_default=600.0)
    provider.mount(bao.attrs(APP))
    reads = bao.reads("secret/data/app")
    denied = {"roleName": "app",
              "objects": "- objectName: o\n  secretPath: secret/data/other\n  secretKey: value"}
    assert provider.mount_error(bao.attrs(denied)).code() == grpc.StatusCode.PERMISSION_DENIED
    assert files_of(provider.mount(bao.attrs(APP)))["pw"][1] == b"first"
    assert bao.reads("secret/data/app") - reads == 1  # read again, not served from memory


# -- dynamic secrets: per pod, until 2/3 of their life ---------------------------------


def test_short_lived_certificate_is_kept_per_pod_until_two_thirds_of_its_life(
    make_provider: ProviderFactory, bao: Bao
) -> None:
    provider = _provider(make_provider, bao, refresh_default=600.0)
    issued = bao.reads("pki/issue/short")
    first = provider.mount(bao.attrs(PKI, pod="web-0"))
    assert bao.reads("pki/issue/short") - issued == 1
    # Rotation polls within 2/3 of 6 s: the same certificate, the same versions, no issue.
    for _ in range(3):
        poll = provider.mount(bao.attrs(PKI, pod="web-0"), current_versions=versions_of(first))
        assert files_of(poll) == files_of(first)
        assert versions_of(poll) == versions_of(first)
    assert bao.reads("pki/issue/short") - issued == 1
    # Another pod of the same service account gets its own certificate.
    other = provider.mount(bao.attrs(PKI, pod="web-1"))
    assert files_of(other)["tls.crt"] != files_of(first)["tls.crt"]
    assert bao.reads("pki/issue/short") - issued == 2
    time.sleep(4.2)  # past 2/3 of the certificate's 6 s
    renewed = provider.mount(bao.attrs(PKI, pod="web-0"), current_versions=versions_of(first))
    assert files_of(renewed)["tls.crt"] != files_of(first)["tls.crt"]
    assert versions_of(renewed) != versions_of(first)
    assert bao.reads("pki/issue/short") - issued == 3


def test_concurrent_pods_never_share_a_certificate(
    make_provider: ProviderFactory, bao: Bao
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    provider = _provider(make_provider, bao, refresh_default=600.0)
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(
            lambda i: provider.mount(bao.attrs(PKI, pod=f"burst-{i}")), range(6)
        ))
    certs = {files_of(a)["tls.crt"][1] for a in answers}
    assert len(certs) == 6


# -- item 4: a stalled login does not lock the identity out -----------------------------


def test_a_stalled_login_does_not_lock_the_identity_out(
    make_provider: ProviderFactory, bao: Bao
) -> None:
    """The first login hangs (and stays hung); the next mount logs in at once."""
    provider = _provider(make_provider, bao, mount_timeout=1.5)
    attrs = bao.attrs(APP, sa="app", pod="stall-0")
    with bao.proxy.faulty(Fault.stalled(match=lambda r: r.path.endswith("/login"), times=1)):
        err = provider.mount_error(attrs)
        assert err.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)
        assert bao.proxy.count("stalled") == 1
        started = time.monotonic()
        assert files_of(provider.mount(attrs))["pw"][1] == b"first"
        assert time.monotonic() - started < 1.0


# -- metrics, shutdown, bounds ----------------------------------------------------------


def _requests_total(provider: RunningProvider) -> float:
    total = 0.0
    for family in provider.app.metrics.registry.collect():
        if family.name == "polysecret_backend_requests":
            total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return total


def test_hits_are_counted_as_lookups_not_backend_requests(
    make_provider: ProviderFactory, bao: Bao
) -> None:
    provider = _provider(make_provider, bao, refresh_default=600.0)
    provider.mount(bao.attrs(APP))
    registry = provider.app.metrics.registry
    labels = {"cache": "objects", "result": "hit"}
    hits = registry.get_sample_value("polysecret_cache_lookups_total", labels) or 0.0
    requests = _requests_total(provider)
    provider.mount(bao.attrs(APP, pod="app-1"))
    assert _requests_total(provider) == requests
    assert registry.get_sample_value("polysecret_cache_lookups_total", labels) == hits + 1
    miss = {"cache": "objects", "result": "miss"}
    assert (registry.get_sample_value("polysecret_cache_lookups_total", miss) or 0) >= 1
    assert registry.get_sample_value("polysecret_cache_entries", {"cache": "objects"}) == 1
    assert (registry.get_sample_value("polysecret_cache_bytes", {"cache": "objects"}) or 0) > 0
    assert registry.get_sample_value("polysecret_cache_entries", {"cache": "vault.tokens"}) == 1
    # The class was parsed once: the second mount's plan was a plan-cache hit.
    assert registry.get_sample_value("polysecret_cache_entries", {"cache": "plans"}) == 1
    plan_hits = {"cache": "plans", "result": "hit"}
    assert (registry.get_sample_value("polysecret_cache_lookups_total", plan_hits) or 0) >= 1
    _status, _type, body = provider.app.metrics.render()
    assert b"first" not in body


def test_shutdown_clears_every_cache(make_provider: ProviderFactory, bao: Bao) -> None:
    provider = _provider(make_provider, bao, refresh_default=600.0)
    provider.mount(bao.attrs(APP))
    provider.mount(bao.attrs(PKI))
    caches = provider.app.caches.caches()
    assert sum(len(c) for c in caches) >= 4  # objects, dynamic, token, transport
    provider.stop()
    assert [(c.name, len(c)) for c in caches if len(c)] == []


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_distinct_vault_addresses_keep_a_bounded_number_of_connections(
    make_provider: ProviderFactory, bao: Bao
) -> None:
    """Issue 10 item 9: each vaultAddress kept a session and its socket forever."""

    class Refuse(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the client pools the connection

        def log_message(self, format: str, *args: object) -> None:
            return None

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b'{"errors":["permission denied"]}'
            self.send_response(403)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("0.0.0.0", 0), Refuse)  # noqa: S104 - every 127.0.0.x
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    try:
        port = server.server_address[1]
        provider = _provider(make_provider, bao)
        provider.mount(bao.attrs(APP))  # hvac imported, pools warm
        before = _open_fds()
        extra = 40
        for i in range(MAX_TRANSPORTS + extra):
            address = f"http://127.0.0.{2 + i}:{port}"
            err = provider.mount_error(bao.attrs(APP | {"vaultAddress": address}))
            assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        backend = provider.run(provider.app.registry.get("vault"))
        assert len(backend.transports) == MAX_TRANSPORTS
        assert backend.transports.stats().evictions >= extra
        time.sleep(0.3)  # the server side sees the closed connections
        # Client and server side of each kept connection, nothing for the evicted ones.
        assert _open_fds() - before <= 2 * MAX_TRANSPORTS + 8
    finally:
        server.shutdown()
        server.server_close()
