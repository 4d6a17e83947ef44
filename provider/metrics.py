"""Prometheus metrics: what mounts and backend requests did, never what they fetched.

One :class:`Metrics` per App is both hooks the server and the backends call
(:class:`provider.observer.MountMetrics`, :class:`provider.backends.base.RequestObserver`),
backed by its own registry so several Apps (tests) never share counters.

Labels are closed sets we choose: the backend name, our error codes (always
the label ``code``: ``ok`` or the code of the pod event), the backend's
operation names (``GetSecretValue``, ``login``...), whether a request went to
the failover region (``failover``), and a fixed ``result``. No ``_created``
series: they double the series count and nobody graphs them. Nothing from
the request — secret names, paths, pods, tokens — becomes a label: that
would leak names into a system with weaker access control than the secrets
themselves and make the series count unbounded.
Any label value that is not a short identifier is replaced by ``other``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

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

# Identifiers such as ``aws``, ``GetSecretValue``, ``vault.login``, ``AccessDenied``.
# No ``/``, spaces or ``-``: paths and names never fit. ``eyJ`` starts every JWT.
_SAFE_LABEL = re.compile(r"^(?!eyJ)[A-Za-z][A-Za-z0-9_.]{0,39}$")
# How a backend names a request to its failover region: ``GetSecretValue(failover)``.
_FAILOVER = "(failover)"


def label(value: str) -> str:
    """A label value, or ``other`` when it is not a short identifier."""
    return value if _SAFE_LABEL.match(value) else "other"


class Metrics:
    """Counters and histograms for mounts and backend requests (both observer hooks)."""

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

    def watch(self, caches: CacheSet) -> None:
        """Expose entries and bytes of every cache in ``caches``, read at scrape time."""
        self.registry.register(_CacheSizes(caches))

    # -- CacheObserver ------------------------------------------------------

    def cache_lookup(self, cache: str, result: str) -> None:
        self.cache_lookups.labels(label(cache), label(result)).inc()

    # -- MountMetrics -------------------------------------------------------

    def mount_started(self) -> None:
        self.in_flight.inc()

    def mount_finished(self, backend: str, outcome: str, seconds: float) -> None:
        self.in_flight.dec()
        result = "success" if outcome == "ok" else "failure"
        backend = label(backend)
        self.mounts.labels(backend, result, label(outcome)).inc()
        self.mount_seconds.labels(backend, result).observe(seconds)

    # -- RequestObserver ----------------------------------------------------

    def backend_request(self, backend: str, operation: str, outcome: str, seconds: float) -> None:
        backend, (operation, failover) = label(backend), _operation(operation)
        self.requests.labels(backend, operation, failover, label(outcome)).inc()
        self.request_seconds.labels(backend, operation, failover).observe(seconds)

    def backend_retry(self, backend: str, operation: str, code: str) -> None:
        operation, failover = _operation(operation)
        self.retries.labels(label(backend), operation, failover, label(code)).inc()


    # -- exposition ---------------------------------------------------------

    def render(self) -> tuple[int, str, bytes]:
        """The /metrics route: status, content type, body."""
        return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)


class _CacheSizes(Collector):
    """Entries and bytes per cache (names are ours: ``objects``, ``vault.tokens``...)."""

    def __init__(self, caches: CacheSet) -> None:
        self._caches = caches

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
            name = label(cache.name)
            held, used = totals.get(name, (0, 0))
            totals[name] = (held + stats.entries, used + stats.bytes)
        for name, (held, used) in sorted(totals.items()):
            entries.add_metric([name], held)
            size.add_metric([name], used)
        yield entries
        yield size

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())


def _operation(operation: str) -> tuple[str, str]:
    """``(operation, failover)`` labels: the failover qualifier is a label of its own."""
    if operation.endswith(_FAILOVER):
        return label(operation.removesuffix(_FAILOVER)), "true"
    return label(operation), "false"
