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
import threading
from typing import TYPE_CHECKING, Any

from provider.cache import CacheSet

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from provider.metricseries import Series

# Identifiers such as ``aws``, ``GetSecretValue``, ``vault.login``, ``AccessDenied``.
# No ``/``, spaces or ``-``: paths and names never fit. ``eyJ`` starts every JWT.
_SAFE_LABEL = re.compile(r"^(?!eyJ)[A-Za-z][A-Za-z0-9_.]{0,39}$")
# How a backend names a request to its failover region: ``GetSecretValue(failover)``.
_FAILOVER = "(failover)"


def label(value: str) -> str:
    """A label value, or ``other`` when it is not a short identifier."""
    return value if _SAFE_LABEL.match(value) else "other"


# Distinct (backend, operation, outcome) whose series are kept at hand.
MAX_REQUEST_SERIES = 1024


class Metrics:
    """Counters and histograms for mounts and backend requests (both observer hooks).

    The series are built on first use (a mount, a cache lookup or a scrape):
    ``prometheus_client`` and what its package imports are ~1 MiB of an idle
    provider's RSS (bench/README.md, "Idle memory"). Nothing is counted
    before they exist, so every scrape shows the same series and values as if
    they had been built at start.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._registry = registry
        self._caches: list[CacheSet] = []
        self._series: Series | None = None
        self._lock = threading.Lock()  # hooks run on the loop and on pool threads
        # (backend, operation, outcome) -> its request counter and duration
        # histogram: prometheus_client's labels() cost ~3.5 of the ~5 us each
        # request spent here, and a cold mount makes one request per object.
        self._request_series: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    @property
    def series(self) -> Series:
        series = self._series
        if series is None:
            with self._lock:
                if self._series is None:
                    from provider.metricseries import Series

                    built = Series(self._registry)
                    for caches in self._caches:
                        built.watch(caches, label)
                    self._series = built
                series = self._series
        return series

    @property
    def registry(self) -> CollectorRegistry:
        return self.series.registry

    def watch(self, caches: CacheSet) -> None:
        """Expose entries and bytes of every cache in ``caches``, read at scrape time."""
        with self._lock:
            series = self._series
            if series is None:
                self._caches.append(caches)
                return
        series.watch(caches, label)

    # -- CacheObserver ------------------------------------------------------

    def cache_lookup(self, cache: str, result: str) -> None:
        self.series.cache_lookups.labels(label(cache), label(result)).inc()

    # -- MountMetrics -------------------------------------------------------

    def mount_started(self) -> None:
        self.series.in_flight.inc()

    def mount_finished(self, backend: str, outcome: str, seconds: float) -> None:
        series = self.series
        series.in_flight.dec()
        result = "success" if outcome == "ok" else "failure"
        backend = label(backend)
        series.mounts.labels(backend, result, label(outcome)).inc()
        series.mount_seconds.labels(backend, result).observe(seconds)

    # -- RequestObserver ----------------------------------------------------

    def backend_request(self, backend: str, operation: str, outcome: str, seconds: float) -> None:
        key = (backend, operation, outcome)
        found = self._request_series.get(key)
        if found is None:
            series = self.series
            backend, (operation, failover) = label(backend), _operation(operation)
            found = (
                series.requests.labels(backend, operation, failover, label(outcome)),
                series.request_seconds.labels(backend, operation, failover),
            )
            if len(self._request_series) >= MAX_REQUEST_SERIES:
                self._request_series.clear()  # bounded whatever the callers pass
            self._request_series[key] = found
        count, duration = found
        count.inc()
        duration.observe(seconds)

    def backend_retry(self, backend: str, operation: str, code: str) -> None:
        operation, failover = _operation(operation)
        self.series.retries.labels(label(backend), operation, failover, label(code)).inc()

    # -- exposition ---------------------------------------------------------

    def render(self) -> tuple[int, str, bytes]:
        """The /metrics route: status, content type, body."""
        return self.series.render()


def _operation(operation: str) -> tuple[str, str]:
    """``(operation, failover)`` labels: the failover qualifier is a label of its own."""
    if operation.endswith(_FAILOVER):
        return label(operation.removesuffix(_FAILOVER)), "true"
    return label(operation), "false"
