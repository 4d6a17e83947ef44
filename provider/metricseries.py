"""The Prometheus series behind :class:`provider.metrics.Metrics`.

Kept apart so ``prometheus_client`` (and what its package imports: the
exposition servers, wsgiref, gzip, platform...) is loaded on the first mount
or scrape, not at start: an idle provider never needs it. Names, help texts,
labels and buckets are the exposition format operators rely on; see
``provider.metrics`` for why the labels are closed sets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from provider import __version__
from provider.cache import CacheSet

NAMESPACE = "polysecret"
disable_created_metrics()  # type: ignore[no-untyped-call]
# Mounts: a cached token + one GET is ~10 ms; logins, cold SDK imports and
# retries take seconds; kubelet gives up after 120 s.
MOUNT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Series:
    """Every series of one App, in its own registry (several Apps never share counters)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        # Memory and CPU of the process: how the chart's limits were checked.
        process_collector.ProcessCollector(registry=r)
        platform_collector.PlatformCollector(registry=r)
        gc_collector.GCCollector(registry=r)
        Info("build", "Provider version.", namespace=NAMESPACE, registry=r).info(
            {"version": __version__}
        )
        self.mounts = Counter(
            "mounts",
            "Finished Mount calls by backend, result (success|failure) and code "
            "(ok or the error code shown in the pod's FailedMount event).",
            ["backend", "result", "code"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.mount_seconds = Histogram(
            "mount_duration_seconds",
            "Mount latency, from the call's arrival to its answer.",
            ["backend", "result"],
            namespace=NAMESPACE,
            buckets=MOUNT_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "mounts_in_flight", "Mount calls being served now.", namespace=NAMESPACE, registry=r
        )
        self.requests = Counter(
            "backend_requests",
            "Requests to a secret store (one per attempt) by backend, operation, failover "
            "(true: to the failover region) and code (ok or an error code).",
            ["backend", "operation", "failover", "code"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.request_seconds = Histogram(
            "backend_request_duration_seconds",
            "Latency of one request to a secret store.",
            ["backend", "operation", "failover"],
            namespace=NAMESPACE,
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "backend_retries",
            "Retries of transient backend faults by backend, operation, failover and code.",
            ["backend", "operation", "failover", "code"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.cache_lookups = Counter(
            "cache_lookups",
            "Lookups in the provider's caches by cache and result (hit, miss, coalesced: "
            "joined a load already under way, expired). Hits are not backend requests.",
            ["cache", "result"],
            namespace=NAMESPACE,
            registry=r,
        )

    def watch(self, caches: CacheSet, label: Callable[[str], str]) -> None:
        """Expose entries and bytes of every cache in ``caches``, read at scrape time."""
        self.registry.register(_CacheSizes(caches, label))

    def render(self) -> tuple[int, str, bytes]:
        return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)


class _CacheSizes(Collector):
    """Entries and bytes per cache (names are ours: ``objects``, ``vault.tokens``...)."""

    def __init__(self, caches: CacheSet, label: Callable[[str], str]) -> None:
        self._caches = caches
        self._label = label

    def collect(self) -> Iterator[GaugeMetricFamily]:
        entries = GaugeMetricFamily(
            f"{NAMESPACE}_cache_entries", "Entries held per cache.", labels=["cache"]
        )
        size = GaugeMetricFamily(
            f"{NAMESPACE}_cache_bytes",
            "Bytes of values held per cache (object caches: value sizes; connection "
            "caches: a measured estimate per entry).",
            labels=["cache"],
        )
        totals: dict[str, tuple[int, int]] = {}
        for cache in self._caches.caches():
            stats = cache.stats()
            name = self._label(cache.name)
            held, used = totals.get(name, (0, 0))
            totals[name] = (held + stats.entries, used + stats.bytes)
        for name, (held, used) in sorted(totals.items()):
            entries.add_metric([name], held)
            size.add_metric([name], used)
        yield entries
        yield size

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())
