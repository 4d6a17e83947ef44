"""The Mount flow, in one read.

request -> ``prepare``: backend and plan (validated, no network; parsed once per
class, off the event loop, cached) -> ``fetch``: admitted as a whole mount, as
the pod (parallel, bounded) -> path rules -> files and object versions.
All or nothing: any failure fails the whole mount and nothing is returned.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from provider import derived
from provider.admission import Admission, default_limit
from provider.backends import BackendRegistry
from provider.backends.base import Backend, FetchContext, FetchResult, RequestObserver
from provider.cache import Cache
from provider.codes import ErrorCode
from provider.dialect import ParseMemo, parse_once
from provider.errors import (
    DeadlineExceeded,
    InvalidParameters,
    InvalidRequest,
    ProviderError,
)
from provider.objectcache import ObjectCache
from provider.paths import check_paths
from provider.pools import BackendPools
from provider.request import POD_KEY_PREFIX, MountRequest
from provider.retry import Deadline, RetryPolicy
from provider.selection import choose_backend

# The driver's default --max-call-recv-msg-size: a larger answer fails inside
# the driver with an opaque gRPC error, so we say which objects are too big.
DRIVER_MAX_RECEIVE = 4 * 1024 * 1024
# Objects one class may mount (--max-objects). Real classes list a few to a
# few hundred; 1000 objects already take a minute of requests at 20 per second
# and most of the driver's 4 MiB answer, while 12,000 took 1.1 MiB of YAML and
# a second of CPU per parse.
DEFAULT_MAX_OBJECTS = 1000


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
        code=ErrorCode.ResponseTooLarge,
    )


@dataclass(frozen=True)
class MountOutcome:
    """A successful mount, plus what the logs and metrics want to know."""

    backend: str
    result: FetchResult
    object_count: int


@dataclass(frozen=True)
class Prepared:
    """A request's backend and validated plan: everything before the network."""

    backend: str
    # The backend itself: chosen and created once per mount, here.
    implementation: Backend[Any]
    plan: Any
    # keysAsFiles / templates (provider.derived), None when the class has none.
    extra: derived.DerivedPlan | None = None


@dataclass(frozen=True)
class _Planned:
    """A plan cache entry (``size``: a bound on its memory; ``keep``: cacheable)."""

    backend: str
    implementation: Backend[Any]
    plan: Any
    extra: derived.DerivedPlan | None
    size: int
    keep: bool
    # A plan that may depend on the pod (Backend.cache_plans False) is only
    # good for the request it was made for, even if others joined its flight.
    request: MountRequest | None


# A parsed plan takes about as much memory as its parameters' text (measured:
# 120 classes of 1.4 MiB held 183 MiB); counted twice to be safe.
PLAN_BYTES_PER_CHAR = 2


class MountPipeline:
    def __init__(
        self,
        *,
        registry: BackendRegistry,
        pools: BackendPools,
        max_parallel: int,
        retry: RetryPolicy | None = None,
        observer: RequestObserver | None = None,
        max_response_bytes: int = DRIVER_MAX_RECEIVE,
        max_objects: int = DEFAULT_MAX_OBJECTS,
        max_mounts: int = 0,
        plan_cache_entries: int = 256,
        plan_cache_bytes: int = 64 * 1024 * 1024,
        objects: ObjectCache | None = None,
    ) -> None:
        self.objects = objects
        self._max_response_bytes = max_response_bytes
        self._registry = registry
        self._pools = pools
        self._max_parallel = max_parallel
        self._retry = retry
        self._observer = observer
        self._max_objects = max_objects
        self._mount_limit = max_mounts or default_limit(pools.workers, max_parallel)
        self._admission: dict[str, Admission] = {}
        self.plans: Cache[tuple[str, int, bytes], _Planned] = Cache(
            "plans",
            max_entries=plan_cache_entries,
            max_bytes=plan_cache_bytes,
            size_of=lambda p: p.size,
            expiry=lambda p: float("inf") if p.keep else 0.0,
        )
        # Parsing a class takes up to a second of CPU (12,000 objects): never
        # on the event loop, and on two threads of its own so that big classes
        # cannot take the backends' threads either.
        self._planner = ThreadPoolExecutor(max_workers=2, thread_name_prefix="plan")

    def admission(self, backend: str) -> Admission:
        found = self._admission.get(backend)
        if found is None:
            found = self._admission[backend] = Admission(backend, self._mount_limit)
        return found

    async def prepare(
        self, request: MountRequest, *, served_name: str, deadline: Deadline
    ) -> Prepared:
        """The backend and plan for ``request``: from the plan cache, or parsed once, off the loop.

        The key is a digest of the class parameters (every attribute except the
        pod's own identity and tokens), the default mode and the socket name:
        nothing pod-specific is ever in a shared plan. Mounts of one class that
        arrive together share one parse.
        """
        key = (served_name, request.default_mode, class_digest(request.attributes))
        try:
            planned = await self.plans.get(
                key, lambda: self._plan(request, served_name), timeout=deadline.remaining()
            )
        except TimeoutError:
            raise DeadlineExceeded(
                "the mount deadline ran out while the SecretProviderClass was parsed"
            ) from None
        if not planned.keep and planned.request is not request:
            planned = await self._plan(request, served_name)
        return Prepared(
            backend=planned.backend,
            implementation=planned.implementation,
            plan=planned.plan,
            extra=planned.extra,
        )

    async def _plan(self, request: MountRequest, served_name: str) -> _Planned:
        loop = asyncio.get_running_loop()
        memo: ParseMemo = {}

        def select() -> str:
            with parse_once(memo):
                return choose_backend(request.attributes, served_name, self._registry.packages)

        name = await loop.run_in_executor(self._planner, select)
        backend = await self._registry.get(name)

        def plan() -> Any:
            # The same memo: the plan reuses the document selection parsed.
            with parse_once(memo):
                return backend.plan(request)  # raises on bad parameters: nothing cached

        planned = await loop.run_in_executor(self._planner, plan)
        count = backend.object_count(planned)
        if count > self._max_objects:
            raise InvalidParameters(
                [
                    f"parameter 'objects' lists {count} objects, more than the "
                    f"{self._max_objects} one class may mount (--max-objects); split the "
                    "SecretProviderClass"
                ],
                code=ErrorCode.TooManyObjects,
            )
        extra: derived.DerivedPlan | None = None
        if derived.wanted(request.attributes):

            def derive() -> derived.DerivedPlan:
                with parse_once(memo):
                    return derived.parse(request.attributes)

            # Compiling templates is CPU work: off the loop, like the plan.
            extra = await loop.run_in_executor(self._planner, derive)
        size = sum(len(k) + len(v) for k, v in request.attributes.items())
        size = PLAN_BYTES_PER_CHAR * size + (extra.memory if extra else 0)
        keep = backend.cache_plans
        return _Planned(name, backend, planned, extra, size, keep, None if keep else request)

    async def fetch(
        self, request: MountRequest, prepared: Prepared, *, deadline: Deadline
    ) -> MountOutcome:
        name, backend = prepared.backend, prepared.implementation
        ctx = FetchContext(
            request=request,
            deadline=deadline,
            executor=self._pools.for_backend(name),
            max_parallel=self._max_parallel,
            backend=name,
            retry=self._retry,
            observer=self._observer,
            objects=self.objects,
            translate=backend.translate,
        )
        # Whole mounts are admitted, or shed early with UNAVAILABLE (overload).
        async with self.admission(name).enter(deadline):
            result = await backend.fetch(prepared.plan, ctx)
        if prepared.extra:
            # Derived files are CPU work (templates): on the planner's threads.
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(
                self._planner, derived.apply, prepared.extra, result, request.default_mode
            )
        check_paths([(f.path, f.source) for f in result.files])
        check_size(result, self._max_response_bytes)
        if not result.versions:
            # The driver fails a mount with no object versions; say why ourselves.
            raise ProviderError("the backend returned no object versions")
        return MountOutcome(
            backend=name, result=result, object_count=backend.object_count(prepared.plan)
        )

    def close(self) -> None:
        self._planner.shutdown(wait=False, cancel_futures=True)
        self.plans.clear()


def class_digest(attributes: Mapping[str, str]) -> bytes:
    """A digest of the SecretProviderClass parameters (the pod's own attributes left out)."""
    digest = hashlib.sha256()
    for key in sorted(attributes):
        if key.startswith(POD_KEY_PREFIX):
            continue
        value = attributes[key]
        for part in (key, value):
            # Length-prefixed: no two different classes give the same stream.
            # surrogatepass: the request parser refuses lone surrogates, but a
            # digest must never be the thing that fails.
            data = part.encode("utf-8", "surrogatepass")
            digest.update(len(data).to_bytes(8, "big"))
            digest.update(data)
    return digest.digest()
