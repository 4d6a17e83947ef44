"""provider.pipeline and FetchContext.gather, on the in-memory fake backend (no secret store).

What only the pipeline decides: the response-size limit, the plan cache (one
parse per class, never across pods when a plan may depend on the pod) and
which error a failed mount reports when several objects fail.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from provider.backends import BackendRegistry
from provider.backends.base import BackendServices
from provider.errors import InvalidRequest, NotFound, ProviderError, Unavailable
from provider.pipeline import MountOutcome, MountPipeline, class_digest
from provider.pools import BackendPools
from provider.request import parse_mount_request
from provider.retry import Deadline, RetryPolicy
from tests.support import fakebackend
from tests.support.fakebackend import FakeBackend, FakeSettings

POD_KEYS = ("pod.name", "pod.namespace", "pod.uid", "serviceAccount.name")


class Fake:
    """A pipeline whose only backend is the fake, and that backend."""

    def __init__(self, pipeline: MountPipeline, backend: FakeBackend) -> None:
        self.pipeline = pipeline
        self.backend = backend

    async def mount(
        self, objects: str, *, pod: str = "app-1", served: str = "polysecret", mode: int = 0o644
    ) -> MountOutcome:
        attributes = {"backend": "fake", "objects": objects}
        # The driver's own attributes and the pod's token: never part of a shared plan.
        attributes.update(
            {f"csi.storage.k8s.io/{key}": f"{pod}-{key}" for key in POD_KEYS},
        )
        attributes["csi.storage.k8s.io/serviceAccount.tokens"] = json.dumps(
            {"fake": {"token": f"token-of-{pod}"}}
        )
        request = parse_mount_request(
            attributes=json.dumps(attributes), secrets="null", permission=str(mode)
        )
        deadline = Deadline.after(10)
        prepared = await self.pipeline.prepare(request, served_name=served, deadline=deadline)
        return await self.pipeline.fetch(request, prepared, deadline=deadline)


@asynccontextmanager
async def fake(settings: FakeSettings, **limits: Any) -> AsyncIterator[Fake]:
    registry = BackendRegistry(
        {"fake": settings}, BackendServices(), packages={"fake": fakebackend}
    )
    pools = BackendPools(4)
    pipeline = MountPipeline(
        registry=registry, pools=pools, max_parallel=4, retry=RetryPolicy(attempts=1), **limits
    )
    try:
        backend = await registry.get("fake")
        assert isinstance(backend, FakeBackend)
        yield Fake(pipeline, backend)
    finally:
        pipeline.close()
        registry.close()
        pools.shutdown()


def sized(sizes: dict[str, int]) -> Callable[[str], bytes]:
    return lambda name: b"x" * sizes[name]


def test_files_and_versions_come_from_the_backend() -> None:
    async def main() -> None:
        async with fake(FakeSettings()) as f:
            outcome = await f.mount("a, b", mode=0o640)
            files = {x.path: (x.contents, x.mode) for x in outcome.result.files}
            assert files == {"a": (b"value of a", 0o640), "b": (b"value of b", 0o640)}
            assert [(v.id, v.version) for v in outcome.result.versions] == [("a", "1"), ("b", "1")]
            assert outcome.backend == "fake" and outcome.object_count == 2
            assert f.backend.seen.requests == {"a": 1, "b": 1}

    asyncio.run(main())


def _wire_size(sizes: dict[str, int]) -> int:
    # What check_size counts: contents, path and a fixed overhead per file.
    return sum(size + len(name) + 16 for name, size in sizes.items())


@pytest.mark.parametrize("spare", [0, 1000])
def test_a_response_within_the_limit_is_served(spare: int) -> None:
    sizes = {"big": 600, "mid": 300, "small": 10}

    async def main() -> None:
        limit = _wire_size(sizes) + spare
        async with fake(FakeSettings(handler=sized(sizes)), max_response_bytes=limit) as f:
            outcome = await f.mount("big,mid,small")
            assert sum(len(x.contents) for x in outcome.result.files) == 910

    asyncio.run(main())


def test_a_response_over_the_limit_fails_naming_the_largest_objects() -> None:
    sizes = {"small": 10, "big": 600, "tiny": 1, "mid": 300}

    async def main() -> None:
        limit = _wire_size(sizes) - 1
        async with fake(FakeSettings(handler=sized(sizes)), max_response_bytes=limit) as f:
            with pytest.raises(InvalidRequest) as info:
                await f.mount("small,big,tiny,mid")
        assert info.value.code == "ResponseTooLarge"
        message = info.value.message
        assert f"total {limit + 1} bytes, over the driver's {limit}-byte" in message
        # The three largest, largest first; the rest left out.
        assert message.endswith(
            "largest objects: 'big' (600 bytes), 'mid' (300 bytes), 'small' (10 bytes)"
        )

    asyncio.run(main())


def test_one_plan_serves_every_pod_of_a_class() -> None:
    async def main() -> None:
        async with fake(FakeSettings()) as f:
            for pod in ("app-1", "app-2", "other-3"):
                outcome = await f.mount("a", pod=pod)
                assert [x.contents for x in outcome.result.files] == [b"value of a"]
            assert f.backend.seen.plans == 1
            # Every mount still reads the backend (no object cache here).
            assert f.backend.seen.requests == {"a": 3}
            stats = f.pipeline.plans.stats()
            assert (stats.entries, stats.hits, stats.misses) == (1, 2, 1)

    asyncio.run(main())


def test_a_new_plan_when_the_class_the_mode_or_the_socket_changes() -> None:
    async def main() -> None:
        async with fake(FakeSettings()) as f:
            await f.mount("a")
            await f.mount("a,b")
            await f.mount("a", mode=0o600)
            await f.mount("a", served="fake")
            assert f.backend.seen.plans == 4
            await f.mount("a,b", pod="app-2")
            assert f.backend.seen.plans == 4

    asyncio.run(main())


def test_the_class_digest_leaves_out_the_pods_own_attributes() -> None:
    spc = {"backend": "fake", "objects": "a"}
    one = {**spc, "csi.storage.k8s.io/pod.name": "app-1", "csi.storage.k8s.io/pod.uid": "1"}
    two = {**spc, "csi.storage.k8s.io/pod.name": "app-2", "csi.storage.k8s.io/pod.uid": "2"}
    assert class_digest(one) == class_digest(two) == class_digest(spc)
    assert class_digest({**spc, "objects": "b"}) != class_digest(spc)


def test_a_plan_that_may_depend_on_the_pod_is_never_shared() -> None:
    async def main() -> None:
        async with fake(FakeSettings(cache_plans=False)) as f:
            # Together, so that the second joins the first one's parse.
            await asyncio.gather(f.mount("a", pod="app-1"), f.mount("a", pod="app-2"))
            assert f.backend.seen.plans == 2
            await f.mount("a", pod="app-1")
            assert f.backend.seen.plans == 3

    asyncio.run(main())


async def _transient(name: str) -> bytes:
    raise Unavailable(f"{name} timed out", code="Throttled")


async def _missing(name: str) -> bytes:
    raise NotFound(f"{name} does not exist")


def _by_name(**handlers: Callable[[str], Any]) -> Callable[[str], Any]:
    async def handler(name: str) -> bytes:
        result: bytes = await handlers[name](name)
        return result

    return handler


@pytest.mark.parametrize("objects", ["flaky,gone", "gone,flaky"])
def test_a_definite_error_wins_over_a_transient_one(objects: str) -> None:
    handler = _by_name(flaky=_transient, gone=_missing)

    async def main() -> None:
        async with fake(FakeSettings(handler=handler)) as f:
            with pytest.raises(ProviderError) as info:
                await f.mount(objects)
            assert f.backend.seen.requests == {"flaky": 1, "gone": 1}
        assert isinstance(info.value, NotFound), info.value
        assert info.value.message == "gone does not exist"

    asyncio.run(main())


def test_only_transient_errors_stay_transient() -> None:
    handler = _by_name(flaky=_transient, slow=_transient)

    async def main() -> None:
        async with fake(FakeSettings(handler=handler)) as f:
            with pytest.raises(Unavailable) as info:
                await f.mount("flaky,slow")
        assert info.value.code == "Throttled"

    asyncio.run(main())
