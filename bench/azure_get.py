"""CPU per Key Vault GET, by layer: what the provider's lean reads save, and what only leaving
azure-core and requests would (issue 16).

One process, the Key Vault stand-in on loopback TLS, the same secret read by:

* ``sdk-default``: SecretClient with the SDK's 13-policy pipeline (the provider before);
* ``sdk-lean``: SecretClient with only the user-agent and challenge policies;
* ``provider``: the provider's read (provider.backends.azure.clients.VaultClient and
  answers.read, awaited on an event loop in this thread: the shared http1 pool, the
  challenge's cached scope, the token kept by tokens.EntraTokens, the JSON read by us);
* ``urllib3`` and ``http.client``: a bearer GET and ``json.loads``, nothing else (urllib3
  was the provider's transport before http1).

The figure is the calling thread's CPU time (``time.thread_time``) per GET, so the
stand-in's threads are not counted; the provider's reads run one after the other, as the
others do (a mount's parallel reads add the core's per-call work: bench/cost.py). Prints
medians of ``--rounds`` interleaved rounds.

    python bench/azure_get.py [--gets 500] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import ssl
import statistics
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import urllib3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gets", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    from azure.core.pipeline.policies import UserAgentPolicy
    from azure.core.pipeline.transport import RequestsTransport
    from azure.identity import ClientAssertionCredential
    from azure.keyvault.secrets import SecretClient
    from azure.keyvault.secrets._shared import ChallengeAuthPolicy

    from provider.backends.azure import answers
    from provider.backends.azure.backend import AzureBackend
    from provider.backends.azure.clients import VaultClient
    from provider.backends.azure.objects import AzureObject, ObjectType
    from provider.backends.azure.tokens import EntraTokens
    from provider.backends.base import BackendServices
    from tests.support.azure_standin import AUDIENCE, TENANT, WI_CLIENT, azure_world
    from tests.support.tokens import pod_token

    with azure_world() as world:
        token = pod_token(AUDIENCE)
        world.tokens.federated[WI_CLIENT] = token
        names = [f"s{i}" for i in range(10)]
        for name in names:
            world.vault.set_secret(name, "v" * 40)
        backend = AzureBackend(world.settings(), BackendServices())
        transport = RequestsTransport(connection_verify=str(world.pki.ca_file))
        credential = ClientAssertionCredential(
            TENANT, WI_CLIENT, lambda: token, authority=world.tokens.url, transport=transport
        )
        url = world.vault.url + "/"
        default = SecretClient(
            url, credential, transport=transport, verify_challenge_resource=False,
            api_version="7.6", retry_total=0,
        )
        lean = SecretClient(
            url, credential, transport=transport, api_version="7.6", policies=[
                UserAgentPolicy(sdk_moniker="keyvault-secrets"),
                ChallengeAuthPolicy(credential, verify_challenge_resource=False),
            ],
        )
        tokens = EntraTokens(
            backend._pools, world.tokens.url, TENANT, WI_CLIENT, assertion=lambda: token
        )
        ours = VaultClient(
            ObjectType.SECRET, url, tokens, pools=backend._pools,
            challenges=backend._challenges, verify_challenge_resource=False, api_version="7.6",
        )
        objects = {
            name: AzureObject(name=name, type=ObjectType.SECRET, file_name=name, version="",
                              history=0, pfx=False, encoding="utf-8", mode=0o644)
            for name in names
        }
        bearer = credential.get_token("https://vault.azure.net/.default").token
        headers = {"Authorization": f"Bearer {bearer}", "Accept": "application/json"}
        split = urllib.parse.urlsplit(world.vault.url)
        tls = ssl.create_default_context(cafile=str(world.pki.ca_file))
        pool = urllib3.HTTPSConnectionPool(split.hostname, split.port, ssl_context=tls)
        conn = http.client.HTTPSConnection(str(split.hostname), split.port, context=tls)

        runner = asyncio.Runner()

        async def provider_reads(count: int) -> None:
            for i in range(count):
                assert (await answers.read(ours, objects[names[i % len(names)]], "")).data

        def via_provider(count: int) -> None:
            runner.run(provider_reads(count))

        def each(get: Callable[[str], object]) -> Callable[[int], None]:
            def run(count: int) -> None:
                for i in range(count):
                    get(names[i % len(names)])
            return run

        def via_urllib3(name: str) -> None:
            answer = pool.request("GET", f"/secrets/{name}/?api-version=7.6", headers=headers)
            assert json.loads(answer.data)["value"]

        def via_http_client(name: str) -> None:
            conn.request("GET", f"/secrets/{name}/?api-version=7.6", headers=headers)
            assert json.loads(conn.getresponse().read())["value"]

        ways: dict[str, Callable[[int], None]] = {
            "sdk-default": each(default.get_secret),
            "sdk-lean": each(lean.get_secret),
            "provider": via_provider,
            "urllib3": each(via_urllib3),
            "http.client": each(via_http_client),
        }
        figures: dict[str, list[float]] = {way: [] for way in ways}
        for run in ways.values():  # warm: token, challenge, connections
            run(len(names))
        for _ in range(args.rounds):
            for way, run in ways.items():
                started = time.thread_time()
                run(args.gets)
                figures[way].append((time.thread_time() - started) / args.gets * 1000)
        print(f"CPU ms per Key Vault GET (calling thread), median of {args.rounds} rounds")
        for way, values in figures.items():
            print(f"  {way:12} {statistics.median(values):6.3f}")
        backend.close()
        runner.run(asyncio.sleep(0))  # the pools' connections close on their loop
        runner.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
