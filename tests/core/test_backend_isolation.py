"""A backend that drips its answers pins no thread past the mount deadline,
starves no other backend, and the next mount succeeds once the drip stops.

Real servers: moto (AWS) behind a proxy that, while dripping, passes the
answer on one byte every half second; OpenBao (Vault) answering normally.
The provider runs with 4 threads per backend and a 3 s mount deadline.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from provider import calltime
from provider.backends.aws import AwsSettings
from provider.backends.vault import VaultSettings
from tests.support.moto import REGION, ROLE_ARN, moto_server, seed_client
from tests.support.openbao import (
    TokenSigner,
    add_policy,
    add_role,
    enable_jwt_auth,
    openbao_server,
)
from tests.support.ports import free_port
from tests.support.running import RunningProvider, files_of, pod_attributes, settings_for
from tests.support.tokens import pod_token

STS_TOKEN = pod_token("sts.amazonaws.com")


class DripProxy:
    """Loopback proxy to ``upstream``; while ``dripping``, answers pass one byte per ``gap``."""

    def __init__(self, upstream: int, gap: float = 0.5) -> None:
        self.upstream = upstream
        self.gap = gap
        self.dripping = threading.Event()
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(5)

    async def _start(self) -> None:
        async def pump(reader: Any, writer: Any, drip: bool) -> None:
            try:
                while data := await reader.read(65536):
                    while drip and data and self.dripping.is_set():
                        writer.write(data[:1])
                        await writer.drain()
                        data = data[1:]
                        await asyncio.sleep(self.gap)
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        async def handle(reader: Any, writer: Any) -> None:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
            await asyncio.gather(
                pump(reader, up_writer, False), pump(up_reader, writer, True),
                return_exceptions=True,
            )  # fmt: skip

        self._server = await asyncio.start_server(handle, "127.0.0.1", self.port)

    def close(self) -> None:
        async def stop() -> None:
            self._server.close()
            # Connections still open (keep-alive): end them before the loop goes.
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


SECRET = f"isolation-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    signer = TokenSigner()
    with moto_server() as moto_url, openbao_server() as bao:
        # moto keeps its state per process, and other modules seed a "db" too.
        seed_client(moto_url, "secretsmanager").create_secret(Name=SECRET, SecretString="aws-pw")
        root = bao.client()
        enable_jwt_auth(root, signer)
        add_policy(root, "app-read", {"secret/data/app": ["read"]})
        add_role(root, "app", ["app"], ["app-read"])
        root.secrets.kv.v2.create_or_update_secret(
            path="app", mount_point="secret", secret={"password": "vault-pw"}
        )
        proxy = DripProxy(int(moto_url.rsplit(":", 1)[1]))
        settings = settings_for(
            tmp_path_factory.mktemp("isolation"),
            {
                "aws": AwsSettings(region=REGION, endpoint_url=f"http://127.0.0.1:{proxy.port}"),
                "vault": VaultSettings(address=bao.address),
            },
            workers=4,
            max_parallel=2,
            mount_timeout=3.0,
        )
        try:
            with RunningProvider(settings) as provider:
                yield {"provider": provider, "signer": signer, "proxy": proxy}
        finally:
            proxy.close()


def aws_mount(provider: RunningProvider, pod: str) -> Any:
    objects = f"- {{objectName: {SECRET}, objectType: secretsmanager, objectAlias: db}}"
    params = {"backend": "aws", "roleArn": ROLE_ARN, "objects": objects}
    attributes = pod_attributes(params, pod=pod, tokens={"sts.amazonaws.com": STS_TOKEN})
    return provider.mount(attributes, timeout=10)


def vault_mount(provider: RunningProvider, signer: TokenSigner, pod: str) -> Any:
    params = {
        "roleName": "app",
        "objects": "- {objectName: pw, secretPath: secret/data/app, secretKey: password}",
    }
    attributes = pod_attributes(params, pod=pod, tokens={"vault": signer.token("app")})
    return provider.mount(attributes, timeout=10)


def outcome(call: Any, *args: Any) -> str:
    try:
        call(*args)
    except grpc.RpcError as exc:
        return str(exc.code().name)
    return "OK"


def test_a_dripping_backend_pins_no_thread_and_starves_no_other(world: dict[str, Any]) -> None:
    provider, signer, proxy = world["provider"], world["signer"], world["proxy"]
    assert files_of(aws_mount(provider, "warm"))["db"][1] == b"aws-pw"

    proxy.dripping.set()
    with ThreadPoolExecutor(8) as pool:
        started = time.monotonic()
        dripped = [pool.submit(outcome, aws_mount, provider, f"drip-{i}") for i in range(8)]
        time.sleep(0.5)
        # Meanwhile Vault has threads of its own: every mount succeeds.
        for i in range(5):
            response = vault_mount(provider, signer, f"vault-{i}")
            assert files_of(response)["pw"][1] == b"vault-pw"
        results = [f.result() for f in dripped]
        took = time.monotonic() - started
    assert set(results) <= {"UNAVAILABLE", "DEADLINE_EXCEEDED"}, results
    assert took < 8, took  # answered at the 3 s deadline, not when the drip ends
    # The threads themselves are free too, not only the mounts answered: the
    # dripping sockets were shut at the deadline. Still dripping, every one of
    # the AWS pool's 4 threads takes a job at once.
    for _ in range(20):
        if calltime.active_calls() == 0:
            break
        time.sleep(0.1)
    assert calltime.active_calls() == 0
    aws_pool = provider.app.executor.for_backend("aws")
    gate = threading.Barrier(5)
    probes = [aws_pool.submit(gate.wait, 2) for _ in range(4)]
    gate.wait(2)
    assert all(p.result(1) is not None for p in probes)

    proxy.dripping.clear()
    assert files_of(aws_mount(provider, "after"))["db"][1] == b"aws-pw"
