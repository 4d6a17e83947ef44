"""An in-memory backend for core tests that need no secret store (like httpx's MockTransport).

It is a backend package like ``provider.backends.aws``: the same hooks
(``add_flags``, ``load_settings``, ``claims``, ``DIALECT``, ``SDK``, ``create``),
registered through :class:`provider.backends.BackendRegistry`'s ``packages``,
so the pipeline, the plan cache and the server run exactly as for a real one.

A ``handler(name) -> bytes`` answers each object, or raises a
``provider.errors`` class; a sync handler runs through ``FetchContext.call``
(the backend's pool, retries, deadline), an async one on the loop (every
object of a mount then fails or answers in the same step, which makes the
order of failures deterministic). The backend counts what it sees itself:
plans made and requests per object.

Parameters: ``objects`` (comma-separated names; each becomes a file of that
name), claimed by the key ``fakeObjects`` when no ``backend`` parameter is set.
"""

from __future__ import annotations

import argparse
import inspect
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar, cast

from provider.backends.base import Backend, FetchContext, FetchResult, ObjectVersion, OutputFile
from provider.errors import InvalidParameters, Problems
from provider.request import MountRequest

NAME = "fake"
SDK: tuple[str, ...] = ()
DIALECT = "fakeObjects"

Handler = Callable[[str], bytes] | Callable[[str], Awaitable[bytes]]


def _default_handler(name: str) -> bytes:
    return f"value of {name}".encode()


@dataclass(frozen=True)
class FakeSettings:
    handler: Handler = _default_handler
    # As Backend.cache_plans: False means a plan may depend on the pod.
    cache_plans: bool = True


def add_flags(group: argparse._ArgumentGroup) -> None:
    return None


def load_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> FakeSettings:
    return FakeSettings()


def claims(attributes: Mapping[str, str], problems: Problems) -> bool:
    return DIALECT in attributes


def create(settings: FakeSettings | None, services: Any) -> FakeBackend:
    return FakeBackend(settings or FakeSettings())


@dataclass(frozen=True)
class FakePlan:
    names: tuple[str, ...]
    mode: int


@dataclass
class Seen:
    """What the backend itself saw (never read from a cache's internals)."""

    plans: int = 0
    requests: Counter[str] = field(default_factory=Counter)


class FakeBackend(Backend[FakePlan]):
    name: ClassVar[str] = NAME

    def __init__(self, settings: FakeSettings) -> None:
        self._handler = settings.handler
        self.cache_plans = settings.cache_plans  # type: ignore[misc]
        self.seen = Seen()
        self._lock = threading.Lock()

    def plan(self, request: MountRequest) -> FakePlan:
        self.seen.plans += 1
        raw = request.attributes.get("objects") or request.attributes.get(DIALECT, "")
        names = tuple(n.strip() for n in raw.split(",") if n.strip())
        if not names:
            raise InvalidParameters(["parameter 'objects': lists no object"])
        return FakePlan(names=names, mode=request.default_mode)

    async def fetch(self, plan: FakePlan, ctx: FetchContext) -> FetchResult:
        values = await ctx.gather(self._read(name, ctx) for name in plan.names)
        return FetchResult(
            files=tuple(
                OutputFile(path=name, mode=plan.mode, contents=value, source=name)
                for name, value in zip(plan.names, values, strict=True)
            ),
            versions=tuple(ObjectVersion(id=name, version="1") for name in plan.names),
        )

    async def _read(self, name: str, ctx: FetchContext) -> bytes:
        if inspect.iscoroutinefunction(self._handler):
            self._count(name)
            answer: bytes = await self._handler(name)
            return answer
        return await ctx.call(partial(self._answer, name), operation="Read")

    def _answer(self, name: str) -> bytes:
        """One request, on the backend's pool (a retry is another request)."""
        self._count(name)
        return cast(Callable[[str], bytes], self._handler)(name)

    def _count(self, name: str) -> None:
        with self._lock:
            self.seen.requests[name] += 1

    def object_count(self, plan: FakePlan) -> int:
        return len(plan.names)
