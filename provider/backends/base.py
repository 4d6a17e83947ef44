"""The one small interface every secret store implements.

A backend does two things: ``plan`` turns the SecretProviderClass parameters
into a validated, immutable plan without touching the network (so every
problem is reported before the first call), and ``fetch`` runs the plan as the
pod and returns the files and object versions. Everything else — choosing the
backend, path rules, the response, error-to-status mapping — belongs to the
pipeline, so a new backend plugs in without changing it.

Blocking SDK calls go through :meth:`FetchContext.call`, which runs them on the
backend's thread pool, ends them at the deadline (provider.calltime), bounds
the parallelism of one mount (provider.lanes), retries transient faults
inside the deadline and is the single place where backend requests are timed
and counted. An asyncio-native client's calls go through
:meth:`FetchContext.call_async`: on the loop, with the same guarantees.
Cached credentials go through :meth:`FetchContext.shared` and
objects through :meth:`FetchContext.cached_object` (single flight; a hit is
no backend request).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Hashable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from provider.errors import (
    DeadlineExceeded,
    PermissionDenied,
    ProviderError,
    Translator,
    Unavailable,
)
from provider.lanes import Job, Lanes, NotStarted, Overdue
from provider.request import MountRequest
from provider.retry import NO_TIME_LEFT, Deadline, RetryPolicy, with_retries

if TYPE_CHECKING:
    from provider.cache import Cache
    from provider.objectcache import ObjectCache

log = logging.getLogger("provider.backend")

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
PlanT = TypeVar("PlanT")


@dataclass(frozen=True)
class OutputFile:
    """One file of the volume. ``source`` names the object, for error messages."""

    path: str
    mode: int
    contents: bytes = field(repr=False)
    source: str


@dataclass(frozen=True)
class ObjectVersion:
    id: str
    version: str


@dataclass(frozen=True)
class FetchResult:
    files: tuple[OutputFile, ...]
    versions: tuple[ObjectVersion, ...]

    @classmethod
    def of(
        cls, rendered: Iterable[tuple[Iterable[OutputFile], Iterable[ObjectVersion]]]
    ) -> FetchResult:
        """One result from each object's ``render`` output, in the class's order."""
        files: list[OutputFile] = []
        versions: list[ObjectVersion] = []
        for f, v in rendered:
            files.extend(f)
            versions.extend(v)
        return cls(tuple(files), tuple(versions))


class RequestObserver(Protocol):
    """Told about every backend request (metrics hook; no secrets pass through)."""

    def backend_request(
        self, backend: str, operation: str, outcome: str, seconds: float
    ) -> None: ...

    def backend_retry(self, backend: str, operation: str, code: str) -> None: ...


class NullObserver:
    def backend_request(self, backend: str, operation: str, outcome: str, seconds: float) -> None:
        return None

    def backend_retry(self, backend: str, operation: str, code: str) -> None:
        return None


class FetchContext:
    """What one mount's fetch may use: the request, its deadline, bounded calls."""

    def __init__(
        self,
        *,
        request: MountRequest,
        deadline: Deadline,
        executor: Executor,
        max_parallel: int,
        backend: str,
        retry: RetryPolicy | None = None,
        observer: RequestObserver | None = None,
        objects: ObjectCache | None = None,
        translate: Translator | None = None,
    ) -> None:
        self.request = request
        self._translate = translate
        self.objects = objects
        self.deadline = deadline
        self.backend = backend
        self._lanes = Lanes(executor, max_parallel, deadline.at)
        self._max_parallel = max(1, max_parallel)
        self._width: asyncio.Semaphore | None = None  # call_async's bound, made on first use
        # call_async's calls now running (their tasks), those the deadline
        # cancelled, and the one timer that does it.
        self._calls: set[asyncio.Task[Any]] = set()
        self._overdue: set[asyncio.Task[Any]] = set()
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._retry = retry or RetryPolicy()
        self._observer: RequestObserver = observer or NullObserver()

    async def call(
        self,
        fn: Callable[..., T],
        *args: Any,
        operation: str,
        subject: str = "",
        retry: bool = True,
        **kwargs: Any,
    ) -> T:
        """Run blocking ``fn(*args, **kwargs)`` on the pool: bounded, timed, retried if transient.

        Like ``loop.run_in_executor``, but the SDK's exceptions are translated
        once, here, by the backend's ``errors.translate`` (``subject`` names the
        object for the message): a backend passes the SDK method itself, no
        closure and no ``try/except``. Anything ``fn`` raises that is neither a
        :mod:`provider.errors` class nor translatable is a bug and becomes
        INTERNAL at the boundary. The calls of one mount run on its
        :class:`~provider.lanes.Lanes` (at most ``max_parallel`` at once).
        """
        translate = self._translate
        target: Callable[[], T]
        if translate is not None:
            target = functools.partial(_translated, translate, subject, operation, fn, args, kwargs)
        elif args or kwargs:
            target = functools.partial(fn, *args, **kwargs)
        else:
            target = fn
        if not retry:
            return await self._attempt(target, operation, subject)
        policy = self._retry
        if self.deadline.remaining() < policy.min_attempt_time:
            raise DeadlineExceeded(NO_TIME_LEFT)
        try:
            # The first attempt without the retry loop: almost every call succeeds.
            return await self._attempt(target, operation, subject)
        except Unavailable as exc:
            failed = exc

        def on_retry(exc: Unavailable, _attempt: int) -> None:
            self._observer.backend_retry(self.backend, operation, exc.code)

        return await with_retries(
            functools.partial(self._attempt, target, operation, subject),
            deadline=self.deadline, policy=policy, on_retry=on_retry, failed=failed,
        )

    async def _attempt(self, target: Callable[[], T], operation: str, subject: str) -> T:
        """One try of a call on the mount's lanes, timed and counted (if it reached a thread)."""
        job = Job(target)
        outcome = "ok"
        lanes = self._lanes
        try:
            future = lanes.start(job)
            try:
                return await future
            finally:
                lanes.forget(job)
        except NotStarted:
            outcome = ""  # never reached the backend: not a request
            raise DeadlineExceeded(
                f"the mount deadline ran out before {operation} could start"
            ) from None
        except Overdue:
            outcome = "DeadlineExceeded"
            raise DeadlineExceeded(
                f"the backend did not answer {operation} before the mount deadline"
            ) from None
        except ProviderError as exc:
            outcome = exc.code
            raise
        except BaseException:
            # Also a cancelled call, unless it was dropped before it started.
            outcome = "Internal" if job.started else ""
            raise
        finally:
            if outcome:
                self._report(operation, subject, outcome, job.elapsed())

    async def call_async(
        self,
        fn: Callable[..., Awaitable[T]],
        *args: Any,
        operation: str,
        subject: str = "",
        retry: bool = True,
        **kwargs: Any,
    ) -> T:
        """``await fn(*args, **kwargs)`` on the loop: bounded, timed, retried if transient.

        :meth:`call` for a backend whose client is asyncio-native (Vault's,
        provider.backends.http1): no thread, the same guarantees. At most
        ``max_parallel`` of one mount's calls run at once; a call still
        running at the mount deadline is cancelled (its connection closed)
        and is DeadlineExceeded; what ``fn`` raises is translated once by
        the backend's ``errors.translate``; transient faults are retried
        inside the deadline; each attempt is timed and counted.
        """
        if not retry:
            return await self._attempt_async(fn, args, kwargs, operation, subject)
        policy = self._retry
        if self.deadline.remaining() < policy.min_attempt_time:
            raise DeadlineExceeded(NO_TIME_LEFT)
        try:
            return await self._attempt_async(fn, args, kwargs, operation, subject)
        except Unavailable as exc:
            failed = exc

        def on_retry(exc: Unavailable, _attempt: int) -> None:
            self._observer.backend_retry(self.backend, operation, exc.code)

        return await with_retries(
            functools.partial(self._attempt_async, fn, args, kwargs, operation, subject),
            deadline=self.deadline, policy=policy, on_retry=on_retry, failed=failed,
        )

    async def _attempt_async(
        self,
        fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        operation: str,
        subject: str,
    ) -> T:
        """One try of an asyncio-native call, under the mount deadline, timed and counted.

        The deadline is one timer per mount (``_expire_calls``), not one per
        call: a per-call ``asyncio.timeout`` and its heap work were ~8 % of a
        50-object Vault mount's CPU. At the deadline the timer cancels every
        call still waiting or running; each turns that cancellation into
        DeadlineExceeded here (and takes it back from its task, so the
        caller's own cancellation state is as before).
        """
        if time.monotonic() >= self.deadline.at:
            raise DeadlineExceeded(f"the mount deadline ran out before {operation} could start")
        task = asyncio.current_task()
        assert task is not None
        self._watch(task)
        started = 0.0
        try:
            width = self._width
            if width is None:
                width = self._width = asyncio.Semaphore(self._max_parallel)
            async with width:
                started = time.perf_counter()
                outcome = "ok"
                try:
                    return await fn(*args, **kwargs)
                except ProviderError as exc:
                    outcome = exc.code
                    raise
                except Exception as exc:  # translate decides; anything it does not know is Internal
                    outcome, error = self._translated(exc, operation, subject)
                    raise error from None
                except BaseException:  # cancelled: by the deadline (below) or the caller
                    outcome = "DeadlineExceeded" if task in self._overdue else "Internal"
                    raise
                finally:
                    self._report(operation, subject, outcome, time.perf_counter() - started)
        except asyncio.CancelledError:
            if task not in self._overdue:
                raise  # the caller's own cancellation
            task.uncancel()
            if started:
                raise DeadlineExceeded(
                    f"the backend did not answer {operation} before the mount deadline"
                ) from None
            raise DeadlineExceeded(
                f"the mount deadline ran out before {operation} could start"
            ) from None
        finally:
            self._unwatch(task)

    def _watch(self, task: asyncio.Task[Any]) -> None:
        """``task`` runs a call: the mount's deadline timer is armed while any does."""
        self._calls.add(task)
        if self._deadline_timer is None:
            loop = asyncio.get_running_loop()
            self._deadline_timer = loop.call_at(self.deadline.at, self._expire_calls)

    def _unwatch(self, task: asyncio.Task[Any]) -> None:
        self._calls.discard(task)
        self._overdue.discard(task)
        if not self._calls and self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None

    def _expire_calls(self) -> None:
        """At the mount deadline: every call still waiting or running is cancelled."""
        self._deadline_timer = None
        for task in self._calls:
            self._overdue.add(task)
            task.cancel()

    def _translated(
        self, exc: Exception, operation: str, subject: str
    ) -> tuple[str, BaseException]:
        """The outcome and the error to raise for ``exc`` (untranslated without a translator)."""
        if self._translate is None:
            return "Internal", exc
        error = self._translate(exc, subject=subject or operation, operation=operation)
        return error.code, error

    def _report(self, operation: str, subject: str, outcome: str, seconds: float) -> None:
        """One backend request: the metrics hook, and a debug record (names only)."""
        self._observer.backend_request(self.backend, operation, outcome, seconds)
        if log.isEnabledFor(logging.DEBUG):
            # Names only: the operation and the object, never a value.
            log.debug("backend request", extra={
                "backend": self.backend, "operation": operation,
                "subject": subject, "outcome": str(outcome),
                "ms": round(seconds * 1000, 1),
            })

    async def shared(
        self,
        cache: Cache[K, T],
        key: K,
        load: Callable[[], T],
        *,
        operation: str,
        subject: str = "",
        ttl: float | None = None,
    ) -> T:
        """``cache``'s value for ``key``, or one ``load()`` on the pool shared by every caller.

        The load runs through :meth:`call` (bounded, retried, counted) under the
        deadline of the mount that started it; each waiter leaves at its own
        deadline, and a stalled flight is no longer joined once its starter's
        deadline has passed, so a hung login never locks an identity out.
        A hit is no backend request.
        """
        return await self._shared(
            cache, key, lambda: self.call(load, operation=operation, subject=subject),
            operation=operation, ttl=ttl,
        )

    async def shared_async(
        self,
        cache: Cache[K, T],
        key: K,
        load: Callable[[], Awaitable[T]],
        *,
        operation: str,
        subject: str = "",
        ttl: float | None = None,
    ) -> T:
        """:meth:`shared` for an asyncio-native ``load`` (run through :meth:`call_async`)."""
        return await self._shared(
            cache, key, lambda: self.call_async(load, operation=operation, subject=subject),
            operation=operation, ttl=ttl,
        )

    async def _shared(
        self,
        cache: Cache[K, T],
        key: K,
        flight: Callable[[], Awaitable[T]],
        *,
        operation: str,
        ttl: float | None,
    ) -> T:
        while True:
            mine = False

            def start() -> Awaitable[T]:
                nonlocal mine
                mine = True
                if log.isEnabledFor(logging.DEBUG):
                    # A login or a credential refresh: the cache had none for this key.
                    log.debug("refreshing", extra={"backend": self.backend,
                                                   "operation": operation})
                return flight()

            try:
                return await cache.get(key, start, timeout=self.deadline.remaining(), ttl=ttl)
            except TimeoutError:
                raise DeadlineExceeded(
                    f"{operation} did not finish before the mount deadline"
                ) from None
            except DeadlineExceeded:
                # A flight we joined ran out of its starter's time, not ours: go
                # again (a new flight) while this mount still has time.
                if mine or self.deadline.remaining() <= 0:
                    raise

    async def cached_object(
        self,
        identity: Hashable,
        request: Hashable,
        load: Callable[[], Awaitable[T]],
        *,
        refresh: float | None,
        size: Callable[[T], int],
        lifetime: Callable[[T], float | None] | None = None,
        fresh: bool = False,
    ) -> T:
        """One object, read through the provider's object cache (see provider.objectcache).

        ``identity`` is everything that decides what the backend lets this
        caller read (the pod's namespace and service account always among it);
        ``request`` is everything that changes the bytes. ``refresh`` is the
        class's refreshInterval (None: the provider's default). ``lifetime``
        tells a dynamic answer (a lease, a certificate) from a static one: its
        remaining seconds, or None for a static value. A denial evicts every
        entry of ``identity``. ``fresh``: read the backend even if a value is
        cached (and keep what was read).
        """
        if self.objects is None:
            return await load()
        try:
            return await self.objects.read(
                self, (self.backend, identity), request, load,
                refresh=refresh, size=size, lifetime=lifetime, fresh=fresh,
            )
        except PermissionDenied:
            self.objects.forget_identity((self.backend, identity))
            raise

    async def gather(self, calls: Iterable[Awaitable[T]]) -> list[T]:
        """Await all, in parallel; the first failure cancels the rest (all or nothing)."""
        tasks: list[asyncio.Task[Any]] = [asyncio.ensure_future(c) for c in calls]
        if not tasks:
            return []
        try:
            _done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            failed = [t for t in tasks if t.done() and not t.cancelled() and t.exception()]
            if failed:
                for t in pending:
                    t.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                raise _most_useful(failed)
            return [t.result() for t in tasks]
        except asyncio.CancelledError:
            for t in tasks:
                t.cancel()
            raise


def _translated(  # noqa: PLR0917 - a functools.partial target, positional on purpose
    translate: Translator,
    subject: str,
    operation: str,
    fn: Callable[..., T],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> T:
    # provider.errors.translating, spelled out: its generator-based context
    # manager cost 2.6 us per call, more than everything else here together.
    try:
        return fn(*args, **kwargs)
    except ProviderError:
        raise
    except Exception as exc:  # translate decides; anything it does not know is Internal
        raise translate(exc, subject=subject or operation, operation=operation) from None


def _most_useful(failed: list[asyncio.Task[Any]]) -> BaseException:
    """Prefer a definite error (denied, missing, invalid) over a transient one."""
    errors = [t.exception() for t in failed]
    for err in errors:
        if isinstance(err, ProviderError) and not isinstance(err, Unavailable | DeadlineExceeded):
            return err
    first = errors[0]
    assert first is not None
    return first


class Backend(ABC, Generic[PlanT]):
    """A secret store. Subclasses implement ``plan`` and ``fetch``."""

    name: ClassVar[str]
    # True when ``plan`` depends only on the SecretProviderClass parameters and
    # the default mode (never on the pod, its tokens or secrets): the pipeline
    # then reuses plans across mounts (every rotation poll re-sends the same class).
    cache_plans: ClassVar[bool] = False
    # The backend's errors.translate: every ``ctx.call`` of this backend runs
    # inside it (provider.errors.translating), so SDK errors are mapped once.
    translate: ClassVar[Translator | None] = None

    @abstractmethod
    def plan(self, request: MountRequest) -> PlanT:
        """Validate the parameters (no network); raise InvalidParameters listing all problems."""

    @abstractmethod
    async def fetch(self, plan: PlanT, ctx: FetchContext) -> FetchResult:
        """Fetch every object of ``plan`` as the pod and render its files."""

    def object_count(self, plan: PlanT) -> int:
        """How many objects the plan mounts (for logs and metrics): its ``objects``."""
        return len(getattr(plan, "objects", ()))

    def close(self) -> None:
        """Release clients and connections (called once at shutdown)."""
        return None


@dataclass(frozen=True, kw_only=True)
class BackendServices:
    """Provider-wide things a backend may use; passed in, never global."""

    node_name: str = ""
    hmac_key: bytes = field(repr=False, default=b"")
    kube: Any = None  # provider.kube.KubeClient; Any to keep the import lazy
    # provider.cache.CacheSet: a backend adds its caches (metrics, shutdown).
    caches: Any = None
    # --max-objects: also the most any one ``select`` may match (provider.listing).
    max_objects: int = 1000
