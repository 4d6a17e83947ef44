"""The core's own CPU per mount, with no secret store behind it.

bench/cost.py measures whole cold mounts, where the backends' HTTP clients
take most of the CPU. This runs the real server, pipeline, lanes, retries,
object cache and metrics against the in-memory backend of the core tests
(tests/support/fakebackend.py: a blocking call per object through
``FetchContext.call``, answering at once), in a process of its own, so the
CPU per mount is what the provider adds to any backend: the gRPC call, the
request parsing, the plan cache, the per-call hop to a thread and back, the
metrics and the response. Each mount is a new pod.

    python bench/core_cost.py [--objects 1,10,50] [--mounts 300]

Prints figures; asserts nothing (the machine is shared: compare within a run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.cost import cpu_seconds  # noqa: E402

TOKEN = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJmYWtlIn0.c2lnLWZha2U"


async def serve(socket_dir: str) -> None:
    """The measured process: the server with the fake backend, until SIGTERM."""
    from provider.backends import BackendRegistry
    from provider.backends.base import BackendServices
    from provider.metrics import Metrics
    from provider.pipeline import MountPipeline
    from provider.pools import BackendPools
    from provider.server import ProviderServer
    from tests.support import fakebackend
    from tests.support.fakebackend import FakeSettings

    metrics = Metrics()
    registry = BackendRegistry(
        {"fake": FakeSettings()}, BackendServices(), packages={"fake": fakebackend}
    )
    # The defaults of ``serve``: 32 threads, 8 calls at once per mount.
    pipeline = MountPipeline(
        registry=registry, pools=BackendPools(32), max_parallel=8, observer=metrics
    )
    server = ProviderServer(
        pipeline=pipeline, socket_dir=socket_dir, names=["polysecret"],
        mount_timeout=30.0, metrics=metrics,
    )  # fmt: skip
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await server.stop(0)


def measure(socket: Path, pid: int, objects: int, mounts: int) -> float:
    import grpc

    from provider.v1alpha1 import service_pb2, service_pb2_grpc
    from tests.support.running import pod_attributes

    names = ",".join(f"o{i}" for i in range(objects))

    def request(i: int) -> service_pb2.MountRequest:
        attrs = pod_attributes({"fakeObjects": names}, pod=f"app-{i}", tokens={"fake": TOKEN})
        attrs["csi.storage.k8s.io/pod.uid"] = str(uuid.uuid4())
        return service_pb2.MountRequest(
            attributes=json.dumps(attrs), secrets="null", permission="420", target_path="/t"
        )

    with grpc.insecure_channel(f"unix:{socket}") as channel:
        stub = service_pb2_grpc.CSIDriverProviderStub(channel)
        for i in range(10):  # warm-up: plan cache, threads, imports
            stub.Mount(request(-1 - i), timeout=30)
        ready = [request(i) for i in range(mounts)]
        cpu0 = cpu_seconds(pid)
        for one in ready:
            response = stub.Mount(one, timeout=30)
            assert len(response.files) == objects
        return (cpu_seconds(pid) - cpu0) / mounts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--objects", default="1,10,50")
    parser.add_argument("--mounts", type=int, default=300)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.serve))
        return 0
    socket_dir = tempfile.mkdtemp(prefix="polysecret-core-")
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", socket_dir],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the server process did not start")
        print("core CPU per mount (server process), in-memory backend, new pod per mount")
        print(f"{'objects':>7} {'CPU ms/mount':>13}")
        rows: dict[int, float] = {}
        for n in (int(s) for s in args.objects.split(",")):
            mounts = max(20, args.mounts // max(1, n // 10))
            rows[n] = measure(Path(socket_dir) / "polysecret.sock", proc.pid, n, mounts)
            print(f"{n:7d} {rows[n] * 1000:13.3f}")
        if len(rows) > 1:
            # What one more object costs: the per-call path (hop, retry, cache, metrics).
            low, high = min(rows), max(rows)
            extra = (rows[high] - rows[low]) / (high - low)
            print(f"per extra object: {extra * 1e6:.1f} us")
    finally:
        proc.terminate()
        proc.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
