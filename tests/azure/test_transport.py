"""Key Vault and Azure AD on the event loop (provider.backends.azure.transport over http1): what
the connections do, seen from a proxy in front of each stand-in that counts them.

Why: the reads are no longer threads cut by the call watchdog but tasks cancelled at the mount
deadline; a cancelled read must close its connection (a half-read one reused would hand the
next mount the stalled answer), and the pools are shared by every identity and by the token
requests, so a mount of another pod opens no new connection.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from provider.backends.azure.transport import ssl_context
from provider.backends.http1 import Origin, Pool
from tests.azure.conftest import SP_SECRET, Seeded, objects, wi_attrs
from tests.support.azure_standin import MI_CLIENT, SP_CLIENT, TENANT
from tests.support.faultproxy import Fault, FaultProxy
from tests.support.running import RunningProvider, files_of, pod_attributes, settings_for

pytestmark = pytest.mark.azure

FOUR = ("plain", "b64", "hexed", "json")


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].rstrip("/"))


@pytest.fixture
def proxied(
    seeded: Seeded, tmp_path: Path
) -> Iterator[Callable[..., tuple[RunningProvider, FaultProxy, FaultProxy]]]:
    """A provider reaching Azure AD and Key Vault through TLS-terminating proxies (their
    certificate names 127.0.0.1, verified with the stand-in's CA)."""
    world = seeded.world
    made: list[FaultProxy] = []
    running: list[RunningProvider] = []

    def make(**server: object) -> tuple[RunningProvider, FaultProxy, FaultProxy]:
        upstream = ssl.create_default_context(cafile=str(world.pki.ca_file))
        tokens, vault = (
            FaultProxy(_port(url), server_ssl=world.pki.server_context(), upstream_ssl=upstream)
            for url in (world.tokens.url, world.vault.url)
        )
        made.extend((tokens, vault))
        settings = world.settings(authority_host=tokens.url(), keyvault_endpoint=vault.url() + "/")
        provider = RunningProvider(settings_for(tmp_path, {"azure": settings}, **server))
        running.append(provider.__enter__())
        return provider, tokens, vault

    yield make
    for provider in running:
        provider.stop()
    for proxy in made:
        proxy.close()


def _eventually(check: Callable[[], bool], seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_read_cut_at_the_deadline_closes_its_connection_and_the_next_mount_reads(
    proxied: Callable[..., tuple[RunningProvider, FaultProxy, FaultProxy]],
) -> None:
    provider, _tokens, vault = proxied(mount_timeout=1.5)
    attrs = wi_attrs("objectName: plain\nobjectType: secret")
    assert files_of(provider.mount(attrs))["plain"][1] == b"three"  # token and challenge kept
    assert vault.connections == 1  # the 401 and the GET on one kept-alive connection
    vault.set(Fault.stalled(times=1))
    started = time.monotonic()
    error = provider.mount_error(attrs)
    assert time.monotonic() - started < 1.5 + 1.0
    assert error.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)
    assert vault.count("stalled") == 1
    # The provider closed the stalled connection (the proxy saw its end): nothing waits on it.
    assert _eventually(lambda: vault.open_connections == 0), vault.open_connections
    # The next mount is served at once, on one new connection: the cut one was not reused.
    assert files_of(provider.mount(attrs))["plain"][1] == b"three"
    assert vault.connections == 2
    assert vault.count("forwarded") == 3


def test_token_requests_and_reads_of_every_identity_share_the_kept_connections(
    proxied: Callable[..., tuple[RunningProvider, FaultProxy, FaultProxy]],
) -> None:
    """One pool per host for every identity and for Azure AD's token requests: a second pod
    (another identity, its own token request) opens no connection; each request carries its
    own token."""
    provider, tokens, vault = proxied()
    items = [f"objectName: {n}\nobjectType: secret" for n in FOUR]
    assert len(files_of(provider.mount(wi_attrs(*items, service_account="reuse")))) == 4
    assert (tokens.connections, tokens.count("forwarded")) == (1, 1)
    opened = vault.connections
    assert 1 <= opened <= len(FOUR)  # the first read alone, then the rest in parallel
    sp = pod_attributes(
        {"keyvaultName": "polyvault", "tenantID": TENANT, "objects": objects(*items)},
        service_account="sp-pools",
    )
    files = files_of(provider.mount(sp, secrets={"clientid": SP_CLIENT, "clientsecret": SP_SECRET}))
    assert len(files) == 4
    # Another identity: its own token request, on the connection the first one kept.
    assert (tokens.connections, tokens.count("forwarded")) == (1, 2)
    assert vault.connections == opened
    # The vault's challenge is kept for every identity: one 401 in all, then 4 GETs a mount.
    assert vault.count("forwarded") == 1 + 2 * len(FOUR)


def test_a_closed_pool_closes_its_idle_tls_connections_at_once(seeded: Seeded) -> None:
    """At shutdown the loop stops right after the backends close: a TLS close that waited for
    the server's close_notify left the socket open (a ResourceWarning, an fd kept). Closing
    an idle connection aborts it: the socket is closed on the loop's next turn."""
    world = seeded.world
    pool = Pool(Origin.of(world.vault.url), ssl_context=ssl_context(str(world.pki.ca_file)))

    async def read() -> tuple[int, socket.socket]:
        answer = await pool.request("GET", "/secrets/plain/?api-version=7.6", {})
        return answer.status, pool._idle[0].transport.get_extra_info("socket")  # type: ignore[union-attr]

    async def close() -> None:
        pool.close()
        await asyncio.sleep(0)

    with asyncio.Runner() as runner:
        status, sock = runner.run(read())
        assert status == 401 and sock.fileno() >= 0  # the challenge: a whole answer, kept
        runner.run(close())
        assert sock.fileno() == -1


def test_a_slow_managed_identity_token_never_holds_the_event_loop(
    proxied: Callable[..., tuple[RunningProvider, FaultProxy, FaultProxy]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """azure-identity's token request blocks: it runs on a thread, so while IMDS takes a
    second to answer, the loop every mount shares goes on turning."""
    provider, tokens, _vault = proxied()
    # azure-identity's own variable for the IMDS host; the node's would be 169.254.169.254.
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", tokens.url())
    tokens.set(Fault.delay(1.0, match=lambda r: r.target.startswith("/metadata/identity")))
    attrs = pod_attributes(
        {"keyvaultName": "polyvault", "useVMManagedIdentity": "true",
         "userAssignedIdentityID": MI_CLIENT,
         "objects": objects("objectName: plain\nobjectType: secret")},
        service_account="mi-slow",
    )
    turns: list[float] = []
    with ThreadPoolExecutor(1) as pool:
        mounted = pool.submit(provider.mount, attrs)
        while not mounted.done():
            started = time.monotonic()
            provider.run(asyncio.sleep(0))
            turns.append(time.monotonic() - started)
            time.sleep(0.05)
        assert files_of(mounted.result())["plain"][1] == b"three"
    assert tokens.count(match=lambda r: r.target.startswith("/metadata/identity")) == 1
    assert len(turns) >= 10 and max(turns) < 0.5, turns
