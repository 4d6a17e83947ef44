"""Run the real provider in-process on a temporary socket directory.

The server runs its own asyncio loop in a thread, exactly as ``serve`` builds
it (provider.app.App); tests talk to it over the real Unix socket with a real
gRPC client (provider.mountcli.mount_once), like the driver does.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc

from provider import eventloop
from provider.app import App
from provider.mountcli import mount_once
from provider.settings import ServerSettings
from provider.v1alpha1 import service_pb2


class RunningProvider:
    def __init__(
        self,
        settings: ServerSettings,
        environ: Mapping[str, str] | None = None,
        hmac_key: bytes = b"k" * 32,
    ) -> None:
        self.settings = settings
        self.app = App(settings, dict(environ or {}), hmac_key=hmac_key)
        # The loop ``serve`` would pick (uvloop when installed): tests run on it.
        self._loop = eventloop.factory(os.environ.get("POLYSECRET_EVENT_LOOP", "auto"))()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> RunningProvider:
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.app.start(), self._loop).result(10)
        except BaseException:
            # A start that fails (a taken port) leaves nothing running behind it.
            self._halt()
            self.app.executor.shutdown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.app.stop(), self._loop).result(30)
        self._halt()

    def _halt(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        # Closing releases the loop's self-pipe sockets (else ResourceWarnings,
        # which the suite turns into errors).
        self._loop.close()

    def wedge(self, seconds: float) -> None:
        """Block the server's event loop for ``seconds``, as a stuck handler would."""
        self._loop.call_soon_threadsafe(time.sleep, seconds)

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(60)

    def socket(self, name: str | None = None) -> Path:
        return Path(self.settings.socket_dir) / f"{name or self.settings.name}.sock"

    def mount(
        self,
        attributes: Mapping[str, str],
        *,
        secrets: Mapping[str, str] | None = None,
        name: str | None = None,
        permission: str = "420",
        current_versions: Mapping[str, str] | None = None,
        target: str = "/tmp/target",
        timeout: float = 60.0,
    ) -> service_pb2.MountResponse:
        return mount_once(
            socket=self.socket(name),
            attributes=dict(attributes),
            secrets=None if secrets is None else dict(secrets),
            target=Path(target),
            permission=permission,
            current_versions=dict(current_versions or {}),
            timeout=timeout,
        )

    def mount_error(self, attributes: Mapping[str, str], **kw: Any) -> grpc.RpcError:
        try:
            self.mount(attributes, **kw)
        except grpc.RpcError as exc:
            return exc
        raise AssertionError("mount succeeded but was expected to fail")


def files_of(response: service_pb2.MountResponse) -> dict[str, tuple[int, bytes]]:
    return {f.path: (f.mode, f.contents) for f in response.files}


def versions_of(response: service_pb2.MountResponse) -> dict[str, str]:
    return {v.id: v.version for v in response.object_version}


def settings_for(socket_dir: Path, backends: dict[str, Any], **kw: Any) -> ServerSettings:
    # refreshInterval 0 unless a test asks: every mount reads the backend, as the
    # peers do; the suites that inject faults between mounts rely on it.
    base = ServerSettings(
        socket_dir=str(socket_dir), name="polysecret", backends=backends, refresh_default=0.0
    )
    return replace(base, **kw)


def pod_attributes(
    params: Mapping[str, str],
    *,
    namespace: str = "default",
    service_account: str = "app",
    pod: str = "app-0",
    tokens: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Attributes as driver v1.6.0 builds them (parameters + pod info + tokens)."""
    attrs = dict(params)
    attrs.update(
        {
            "secretProviderClass": "test-spc",
            "csi.storage.k8s.io/pod.name": pod,
            "csi.storage.k8s.io/pod.namespace": namespace,
            "csi.storage.k8s.io/pod.uid": "9d7c7e1e-0000-4000-8000-000000000001",
            "csi.storage.k8s.io/serviceAccount.name": service_account,
            "csi.storage.k8s.io/ephemeral": "true",
        }
    )
    if tokens:
        attrs["csi.storage.k8s.io/serviceAccount.tokens"] = json.dumps(
            {
                a: {"token": t, "expirationTimestamp": "2099-01-01T00:00:00Z"}
                for a, t in tokens.items()
            }
        )
    return attrs
