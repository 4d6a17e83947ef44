"""provider.server and provider.observer: a Mount over a real socket, on the fake backend.

The server only parses, calls the pipeline and answers; what a mount leaves
behind (the status, one log line, the metrics) comes from the observer, and a
failed mount's line and metrics still name the backend it went to.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from pathlib import Path

import grpc
import pytest

from provider.backends import BackendRegistry
from provider.backends.base import BackendServices, FetchResult, ObjectVersion, OutputFile
from provider.errors import NotFound
from provider.metrics import Metrics
from provider.pipeline import MountPipeline
from provider.pools import BackendPools
from provider.server import ProviderServer, to_response
from provider.v1alpha1 import service_pb2, service_pb2_grpc
from tests.support import fakebackend
from tests.support.fakebackend import FakeSettings
from tests.support.running import pod_attributes

TOKEN = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJmYWtlIn0.c2lnLWZha2U"


def _answer(name: str) -> bytes:
    if name == "gone":
        raise NotFound(f"{name} does not exist")
    return b"s3cr3t-" + name.encode()


async def _mounts(socket_dir: Path, metrics: Metrics) -> list[object]:
    registry = BackendRegistry(
        {"fake": FakeSettings(handler=_answer)}, BackendServices(), packages={"fake": fakebackend}
    )
    pools = BackendPools(2)
    pipeline = MountPipeline(registry=registry, pools=pools, max_parallel=2, observer=metrics)
    server = ProviderServer(
        pipeline=pipeline, socket_dir=str(socket_dir), names=["polysecret"],
        mount_timeout=10.0, metrics=metrics,
    )  # fmt: skip
    await server.start()
    answers: list[object] = []
    try:
        async with grpc.aio.insecure_channel(f"unix:{server.paths[0]}") as channel:
            stub = service_pb2_grpc.CSIDriverProviderStub(channel)
            for attributes in (
                pod_attributes({"fakeObjects": "a"}, tokens={"fake": TOKEN}),
                pod_attributes({"fakeObjects": "a,gone"}, tokens={"fake": TOKEN}),
                "{not json",
            ):
                request = service_pb2.MountRequest(
                    attributes=attributes if isinstance(attributes, str)
                    else json.dumps(attributes),
                    secrets="null", permission="420", target_path="/t",
                )  # fmt: skip
                try:
                    answers.append(await stub.Mount(request))
                except grpc.aio.AioRpcError as exc:
                    answers.append(exc)
    finally:
        await server.stop(0)
        pipeline.close()
        registry.close()
        pools.shutdown()
    return answers


def test_status_log_line_and_metrics_of_each_mount(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    with (
        tempfile.TemporaryDirectory(dir="/tmp") as socket_dir,
        caplog.at_level(logging.INFO, logger="provider.server"),
    ):
        ok, missing, garbled = asyncio.run(_mounts(Path(socket_dir), metrics))

    assert isinstance(ok, service_pb2.MountResponse)
    assert [(f.path, f.contents) for f in ok.files] == [("a", b"s3cr3t-a")]
    assert isinstance(missing, grpc.aio.AioRpcError)
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    assert missing.details() == "ObjectNotFound: gone does not exist"
    assert isinstance(garbled, grpc.aio.AioRpcError)
    assert garbled.code() == grpc.StatusCode.INVALID_ARGUMENT

    lines = [r for r in caplog.records if r.getMessage().startswith("mount ")]
    seen = [
        (r.getMessage(), r.backend, r.outcome, r.objects, getattr(r, "error", ""))  # type: ignore[attr-defined]
        for r in lines
    ]
    assert seen == [
        ("mount succeeded", "fake", "ok", 1, ""),
        ("mount failed", "fake", "ObjectNotFound", None, "ObjectNotFound: gone does not exist"),
        ("mount failed", "unknown", "InvalidRequest", None, garbled.details()),
    ]
    assert [(r.pod, r.secret_provider_class) for r in lines] == [  # type: ignore[attr-defined]
        ("default/app-0", "test-spc"), ("default/app-0", "test-spc"), ("", ""),
    ]
    assert not any("s3cr3t" in r.getMessage() or TOKEN in str(r.__dict__) for r in lines)

    sample = metrics.registry.get_sample_value
    for backend, result, code in (
        ("fake", "success", "ok"),
        ("fake", "failure", "ObjectNotFound"),
        ("unknown", "failure", "InvalidRequest"),
    ):
        labels = {"backend": backend, "result": result, "code": code}
        assert sample("polysecret_mounts_total", labels) == 1, labels
    assert sample("polysecret_mounts_in_flight") == 0
    # Counted by the backend's calls themselves (FetchContext.call), not by the server.
    labels = {"backend": "fake", "operation": "Read", "failover": "false", "code": "ObjectNotFound"}
    assert sample("polysecret_backend_requests_total", labels) == 1


def test_the_response_holds_every_file_and_version_in_order() -> None:
    result = FetchResult(
        files=tuple(
            OutputFile(path=f"d/o{i}", mode=0o600 + i, contents=bytes([i]) * i, source=f"o{i}")
            for i in range(5)
        ),
        versions=tuple(ObjectVersion(id=f"o{i}", version=str(i)) for i in range(5)),
    )
    response = to_response(result)
    assert [(f.path, f.mode, f.contents) for f in response.files] == [
        (f"d/o{i}", 0o600 + i, bytes([i]) * i) for i in range(5)
    ]
    assert [(v.id, v.version) for v in response.object_version] == [
        (f"o{i}", str(i)) for i in range(5)
    ]
    # What the driver reads: the same bytes as the message built in one go.
    whole = service_pb2.MountResponse(
        object_version=[service_pb2.ObjectVersion(id=v.id, version=v.version)
                        for v in result.versions],
        files=[service_pb2.File(path=f.path, mode=f.mode, contents=f.contents)
               for f in result.files],
    )
    assert response.SerializeToString() == whole.SerializeToString()
