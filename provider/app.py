"""Wiring: builds the provider from settings and owns its lifecycle.

Kept apart from the CLI so tests (and the benchmark) run the very same server
in-process on a temporary socket directory.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from provider.backends import BackendRegistry
from provider.backends.base import BackendServices, RequestObserver
from provider.kube import KubeClient
from provider.pipeline import MountPipeline
from provider.server import MountObserver, ProviderServer, make_executor
from provider.settings import ServerSettings

log = logging.getLogger("provider.app")


class App:
    def __init__(
        self,
        settings: ServerSettings,
        environ: Mapping[str, str],
        *,
        hmac_key: bytes,
        observer: RequestObserver | None = None,
        mount_observer: MountObserver | None = None,
    ) -> None:
        self.settings = settings
        self.executor = make_executor(settings.workers)
        services = BackendServices(
            node_name=settings.node_name,
            hmac_key=hmac_key,
            kube=KubeClient.from_environment(settings.kube_api, environ),
            environ=dict(environ),
        )
        self.registry = BackendRegistry(settings.backends, services)
        self.pipeline = MountPipeline(
            registry=self.registry,
            executor=self.executor,
            max_parallel=settings.max_parallel,
            observer=observer,
        )
        self.server = ProviderServer(
            pipeline=self.pipeline,
            socket_dir=settings.socket_dir,
            names=settings.names,
            mount_timeout=settings.mount_timeout,
            observer=mount_observer,
        )

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop(self.settings.grace_period)
        self.registry.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
