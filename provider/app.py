"""Wiring: builds the provider from settings and owns its lifecycle.

Kept apart from the CLI so tests (and the benchmark) run the very same server
in-process on a temporary socket directory.

Start: bind the HTTP endpoints first (a taken port fails start-up before any
socket appears), then the gRPC servers, then report ready. Stop: report not
ready and NOT_SERVING, stop accepting, give in-flight mounts the grace period,
remove the sockets, then close the HTTP endpoints and the backends.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from provider.backends import BackendRegistry
from provider.backends.base import BackendServices
from provider.cache import CacheSet
from provider.health import GrpcHealth, HttpEndpoint, Probes, Route, probe_route
from provider.kube import KubeClient
from provider.metrics import Metrics
from provider.objectcache import ObjectCache, RefreshPolicy
from provider.pipeline import MountPipeline
from provider.pools import BackendPools
from provider.server import ProviderServer
from provider.settings import ServerSettings

log = logging.getLogger("provider.app")


class App:
    def __init__(
        self,
        settings: ServerSettings,
        environ: Mapping[str, str],
        *,
        hmac_key: bytes,
    ) -> None:
        self.settings = settings
        # One pool per backend: a slow backend cannot take another's threads.
        self.executor = BackendPools(settings.workers)
        # Always collected (cheap); served only when --metrics-addr is set.
        self.metrics = Metrics()
        # Every cache joins this set: lookups and sizes in the metrics, cleared on stop.
        self.caches = CacheSet(self.metrics)
        self.metrics.watch(self.caches)
        kube = KubeClient.from_environment(
            settings.kube_api,
            environ,
            token_file=settings.kube_token_file,
            ca_file=settings.kube_ca_file,
        )
        if kube is not None:
            self.caches.add(kube.reads)
        services = BackendServices(
            node_name=settings.node_name,
            hmac_key=hmac_key,
            kube=kube,
            caches=self.caches,
            max_objects=settings.max_objects,
        )
        self.objects = ObjectCache(
            RefreshPolicy(
                default=settings.refresh_default,
                maximum=settings.refresh_max,
                max_entries=settings.object_cache_entries,
                max_bytes=settings.object_cache_bytes,
            ),
            self.caches,
        )
        self.registry = BackendRegistry(settings.backends, services)
        self.pipeline = MountPipeline(
            registry=self.registry,
            pools=self.executor,
            max_parallel=settings.max_parallel,
            observer=self.metrics,
            max_objects=settings.max_objects,
            max_mounts=settings.max_mounts,
            plan_cache_bytes=settings.plan_cache_mib * 1024 * 1024,
            objects=self.objects,
        )
        # The plan cache too: its lookups and size are in the metrics.
        self.caches.add(self.pipeline.plans)
        self.grpc_health = GrpcHealth()
        self.server = ProviderServer(
            pipeline=self.pipeline,
            socket_dir=settings.socket_dir,
            names=settings.names,
            mount_timeout=settings.mount_timeout,
            metrics=self.metrics,
            extra_services=[self.grpc_health.register],
        )
        self.probes = Probes(sockets=self.server.paths)
        self.http: list[HttpEndpoint] = []

    def _endpoint_routes(self) -> dict[str, dict[str, Route]]:
        """Routes by address; health and metrics share a listener on equal addresses."""
        by_addr: dict[str, dict[str, Route]] = {}
        if self.settings.health_addr:
            routes = by_addr.setdefault(self.settings.health_addr, {})
            routes["/healthz"] = probe_route(self.probes.live)
            routes["/readyz"] = probe_route(self.probes.ready)
        if self.settings.metrics_addr:
            by_addr.setdefault(self.settings.metrics_addr, {})["/metrics"] = self.metrics.render
        return by_addr

    def port(self, path: str) -> int:
        """The TCP port serving ``path`` (``/healthz``, ``/metrics``); for tests and logs."""
        for endpoint in self.http:
            if path in endpoint.paths:
                return endpoint.port
        raise LookupError(f"no HTTP endpoint serves {path}")

    async def start(self) -> None:
        try:
            for addr, routes in self._endpoint_routes().items():
                self.http.append(HttpEndpoint(addr, routes))
            for endpoint in self.http:
                endpoint.start()
            await self.server.start()
        except BaseException:
            await self.server.stop(0)
            self._stop_http()
            raise
        await self.grpc_health.serving()
        self.probes.started = True
        log.info(
            "ready",
            extra={
                "sockets": [str(p) for p in self.server.paths],
                # Those whose SDK is installed: a class for another fails with
                # BackendNotInstalled, naming the pip extra.
                "backends": self.registry.available(),
            },
        )

    async def stop(self) -> None:
        self.probes.stopping = True
        await self.grpc_health.shutting_down()
        await self.server.stop(self.settings.grace_period)
        self._stop_http()
        self.registry.close()
        self.pipeline.close()
        self.caches.clear()  # no value outlives the provider's work
        self.executor.shutdown(wait=False, cancel_futures=True)

    def _stop_http(self) -> None:
        for endpoint in self.http:
            endpoint.stop()
        self.http.clear()
