"""The Mount flow, in one read.

request -> typed config -> backend plan (validated, no network) -> fetch as the
pod (parallel, bounded) -> path rules -> files and object versions.
All or nothing: any failure fails the whole mount and nothing is returned.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from provider.backends import BackendRegistry
from provider.backends.base import Backend, FetchContext, FetchResult, RequestObserver
from provider.errors import InvalidRequest, ProviderError
from provider.objectcache import ObjectCache
from provider.paths import check_paths
from provider.request import POD_KEY_PREFIX, MountRequest, parse_mount_request
from provider.retry import Deadline, RetryPolicy
from provider.selection import choose_backend

# The driver's default --max-call-recv-msg-size: a larger answer fails inside
# the driver with an opaque gRPC error, so we say which objects are too big.
DRIVER_MAX_RECEIVE = 4 * 1024 * 1024


def check_size(result: FetchResult, limit: int) -> None:
    total = sum(len(f.contents) + len(f.path) + 16 for f in result.files)
    if total <= limit:
        return
    sizes: dict[str, int] = {}
    for f in result.files:
        sizes[f.source] = sizes.get(f.source, 0) + len(f.contents)
    largest = sorted(sizes.items(), key=lambda kv: kv[1], reverse=True)[:3]
    listed = ", ".join(f"{name!r} ({size} bytes)" for name, size in largest)
    raise InvalidRequest(
        f"the mount's files total {total} bytes, over the driver's {limit}-byte message limit "
        f"(--max-call-recv-msg-size); largest objects: {listed}",
        code="ResponseTooLarge",
    )


@dataclass(frozen=True)
class MountOutcome:
    """A successful mount, plus what the logs and metrics want to know."""

    backend: str
    result: FetchResult
    object_count: int


@dataclass(frozen=True)
class MountInput:
    """The wire fields of a Mount call, as plain values."""

    attributes: str
    secrets: str
    target_path: str
    permission: str
    current_versions: Mapping[str, str]


class MountPipeline:
    def __init__(
        self,
        *,
        registry: BackendRegistry,
        executor: Executor,
        max_parallel: int,
        retry: RetryPolicy | None = None,
        observer: RequestObserver | None = None,
        max_response_bytes: int = DRIVER_MAX_RECEIVE,
        objects: ObjectCache | None = None,
    ) -> None:
        self.objects = objects
        self._max_response_bytes = max_response_bytes
        self._registry = registry
        self._executor = executor
        self._max_parallel = max_parallel
        self._retry = retry
        self._observer = observer
        self._plans = PlanCache()

    def parse(self, wire: MountInput) -> MountRequest:
        return parse_mount_request(
            attributes=wire.attributes,
            secrets=wire.secrets,
            target_path=wire.target_path,
            permission=wire.permission,
            current_versions=wire.current_versions,
        )

    async def mount(
        self, request: MountRequest, *, served_name: str, deadline: Deadline
    ) -> MountOutcome:
        name = choose_backend(request.attributes, served_name)
        backend = await self._registry.get(name)
        plan = self._plans.plan(name, backend, request)
        ctx = FetchContext(
            request=request,
            deadline=deadline,
            executor=self._executor,
            max_parallel=self._max_parallel,
            backend=name,
            retry=self._retry,
            observer=self._observer,
            objects=self.objects,
        )
        result = await backend.fetch(plan, ctx)
        check_paths([(f.path, f.source) for f in result.files])
        check_size(result, self._max_response_bytes)
        if not result.versions:
            # The driver fails a mount with no object versions; say why ourselves.
            raise ProviderError("the backend returned no object versions")
        return MountOutcome(backend=name, result=result, object_count=backend.object_count(plan))


class PlanCache:
    """Validated plans by SecretProviderClass parameters, for backends that allow it.

    Every rotation poll of every pod re-sends the same class; parsing its YAML
    and compiling its expressions again is pure waste. The key is the backend,
    the default mode and every attribute except the pod's own (identity and
    tokens), so nothing pod-specific is ever in a shared plan.
    """

    def __init__(self, size: int = 256) -> None:
        self._plans: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def plan(self, name: str, backend: Backend[Any], request: MountRequest) -> Any:
        if not backend.cache_plans:
            return backend.plan(request)
        key = (
            name,
            request.default_mode,
            frozenset(
                (k, v) for k, v in request.attributes.items() if not k.startswith(POD_KEY_PREFIX)
            ),
        )
        with self._lock:
            found = self._plans.get(key)
            if found is not None:
                self._plans.move_to_end(key)
                return found
        plan = backend.plan(request)  # raises on bad parameters: nothing cached
        with self._lock:
            self._plans[key] = plan
            while len(self._plans) > self._size:
                self._plans.popitem(last=False)
        return plan
