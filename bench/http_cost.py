"""CPU per Vault read by HTTP client: why Vault's transport is provider.backends.http1.

Reads one KV v2 secret from a real OpenBao, ``--reads`` at a time with at most
eight in flight (a mount's default ``--max-parallel``), ``--rounds`` times, and
prints the process CPU time per read for:

- urllib3 on eight threads (Vault's transport before; the Key Vault one still
  works this way): http.client's header parsing, urllib3's bookkeeping and the
  threads' turns at the GIL;
- provider.backends.http1 on the event loop (Vault's transport now), over
  plain HTTP and over TLS;
- aiohttp, if installed (``pip install aiohttp``; not a dependency): the
  asyncio client library, for comparison.

    python bench/http_cost.py [--reads 50] [--rounds 40]

Prints figures; asserts nothing (the machine is shared: compare within a run).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from provider.backends.vault import VaultSettings, VaultTls  # noqa: E402
from provider.backends.vault.config import VaultConnection  # noqa: E402
from provider.backends.vault.transport import VaultTransport, build_ssl_context  # noqa: E402
from tests.support.openbao import ROOT_TOKEN, openbao_server  # noqa: E402

PATH = "secret/data/bench/one"
WIDTH = 8


def measure(name: str, run: Callable[[], None], reads: int, rounds: int) -> None:
    run()  # connections opened, modules loaded
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(rounds):
        run()
    per_read = (time.process_time() - cpu) / rounds / reads * 1e6
    per_round = (time.perf_counter() - wall) / rounds * 1e3
    print(f"{name:34s} {per_read:7.0f} us CPU per read {per_round:8.1f} ms per {reads} reads")


def on_loop(loop: asyncio.AbstractEventLoop, one: Callable[[], Awaitable[object]],
            reads: int) -> Callable[[], None]:
    async def batch() -> None:
        bound = asyncio.Semaphore(WIDTH)

        async def bounded() -> None:
            async with bound:
                await one()

        await asyncio.gather(*(bounded() for _ in range(reads)))

    return lambda: loop.run_until_complete(batch())


def urllib3_threads(address: str, tls: VaultTls, reads: int) -> Callable[[], None]:
    import urllib3

    pool = urllib3.PoolManager(
        maxsize=WIDTH, ssl_context=build_ssl_context(tls)
    ).connection_from_url(address)
    threads = ThreadPoolExecutor(WIDTH)
    loop = asyncio.new_event_loop()

    def one() -> bytes:
        answer = pool.urlopen("GET", f"/v1/{PATH}", headers={"X-Vault-Token": ROOT_TOKEN},
                              retries=False)
        return bytes(answer.data)

    async def batch() -> None:
        await asyncio.gather(*(loop.run_in_executor(threads, one) for _ in range(reads)))

    return lambda: loop.run_until_complete(batch())


def http1(address: str, tls: VaultTls, reads: int) -> Callable[[], None]:
    transport = VaultTransport(VaultConnection(address, "", tls), VaultSettings())
    loop = asyncio.new_event_loop()
    return on_loop(loop, lambda: transport.request("GET", PATH, token=ROOT_TOKEN), reads)


def aiohttp_client(
    address: str, reads: int
) -> tuple[Callable[[], None], Callable[[], None]] | None:
    """A batch of reads through aiohttp, and how to close its session; None without aiohttp."""
    try:
        import aiohttp
    except ImportError:
        return None
    loop = asyncio.new_event_loop()

    async def session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=WIDTH),
                                     cookie_jar=aiohttp.DummyCookieJar())

    client = loop.run_until_complete(session())

    async def one() -> object:
        async with client.get(f"{address}/v1/{PATH}",
                              headers={"X-Vault-Token": ROOT_TOKEN}) as answer:
            return await answer.read()

    return on_loop(loop, one, reads), lambda: loop.run_until_complete(client.close())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args(argv)
    with openbao_server(with_tls=True) as bao:
        bao.client().secrets.kv.v2.create_or_update_secret(
            path="bench/one", secret={"value": "x" * 64}, mount_point="secret"
        )
        assert bao.tls is not None
        tls = VaultTls(ca_cert=str(bao.tls.ca_cert))
        # The server certificate names localhost, not 127.0.0.1.
        https = bao.tls_address.replace("127.0.0.1", "localhost")
        for label, address in (("http", bao.address), ("https", https)):
            measure(f"urllib3, {WIDTH} threads, {label}", urllib3_threads(address, tls, args.reads),
                    args.reads, args.rounds)
            measure(f"http1 on the loop, {label}", http1(address, tls, args.reads),
                    args.reads, args.rounds)
        found = aiohttp_client(bao.address, args.reads)
        if found is not None:
            run, close = found
            measure("aiohttp, http (bytes only, no JSON)", run, args.reads, args.rounds)
            close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
