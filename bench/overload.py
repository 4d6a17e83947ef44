"""How the provider degrades under overload: success ratio, latency, RSS and threads.

Issue 10, item 8: 200 concurrent 10-object mounts against a backend that takes
1 s per request, with a 20 s mount deadline, all failed, though the worker
pool could have finished about 60 of them. This drives that shape at 1x, 2x,
5x and 10x of what the pool can finish (capacity = workers x deadline /
(objects x latency)) and prints, per level, how many mounts succeeded, the
latency of the answers, the status codes, and the provider's peak RSS and
thread count.

The backend is a real OpenBao behind the fault proxy adding ``--latency`` to
every request; the provider is a separate process (``python -m provider
serve``) so /proc shows its figures alone; each level starts a fresh provider
(so abandoned work of one level cannot slow the next) whose Vault tokens are
warmed first. Prints figures only; asserts nothing.

    python bench/overload.py [--workers 16] [--levels 1,2,5,10]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from provider.v1alpha1 import service_pb2  # noqa: E402
from tests.faults.provider_process import ProviderProcess, Usage  # noqa: E402
from tests.support.faultproxy import Fault, FaultProxy  # noqa: E402
from tests.support.openbao import (  # noqa: E402
    AUTH_MOUNT,
    TokenSigner,
    add_policy,
    add_role,
    enable_jwt_auth,
    openbao_server,
)
from tests.support.running import pod_attributes  # noqa: E402

ACCOUNTS = [f"app-{i}" for i in range(10)]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextmanager
def seeded_openbao(objects: int) -> Iterator[tuple[str, TokenSigner]]:
    signer = TokenSigner()
    with openbao_server() as bao:
        root = bao.client()
        enable_jwt_auth(root, signer, AUTH_MOUNT)
        add_policy(root, "load", {"secret/data/load/*": ["read"]})
        add_role(root, "load", ACCOUNTS, ["load"])
        for i in range(objects):
            root.secrets.kv.v2.create_or_update_secret(
                path=f"load/s{i}", mount_point="secret", secret={"value": f"value-{i}"}
            )
        yield bao.address, signer


class Sampler:
    """Peak RSS and threads of a process, sampled every 0.25 s while running."""

    def __init__(self, provider: ProviderProcess) -> None:
        self.provider = provider
        self.peak = provider.usage()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            now = self.provider.usage()
            self.peak = Usage(
                max(self.peak.rss_mib, now.rss_mib),
                max(self.peak.fds, now.fds),
                max(self.peak.threads, now.threads),
            )

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def level(
    address: str, signer: TokenSigner, args: argparse.Namespace, mounts: int, label: str
) -> None:
    objects = "\n".join(
        f"- objectName: s{i}\n  secretPath: secret/data/load/s{i}\n  secretKey: value"
        for i in range(args.objects)
    )
    proxy = FaultProxy(int(address.rsplit(":", 1)[1]))
    provider = ProviderProcess(
        "--vault-addr", proxy.url(), "--workers", str(args.workers),
        "--mount-timeout", str(args.deadline),
    )
    try:
        tokens = {sa: signer.token(sa) for sa in ACCOUNTS}

        def request(sa: str) -> service_pb2.MountRequest:
            attrs = pod_attributes(
                {"roleName": "load", "vaultAddress": proxy.url(), "objects": objects},
                service_account=sa, tokens={"vault": tokens[sa]},
            )
            return service_pb2.MountRequest(
                attributes=json.dumps(attrs), secrets="null", target_path="/tmp/load",
                permission="420",
            )

        # Warm: every identity logged in (no latency yet), as on a node already running.
        for sa in ACCOUNTS:
            provider.stub.Mount(request(sa), timeout=30)
        proxy.set(Fault.delay(args.latency))
        idle = provider.usage()
        done: list[tuple[grpc.StatusCode, float]] = []
        lock = threading.Lock()
        finished = threading.Event()
        started = time.monotonic()

        def record(call: Any) -> None:  # a grpc.Future that is also a grpc.Call
            code = call.code()
            with lock:
                done.append((code, time.monotonic() - started))
                if len(done) == mounts:
                    finished.set()

        with Sampler(provider) as sampler:
            for i in range(mounts):
                future = provider.stub.Mount.future(
                    request(ACCOUNTS[i % len(ACCOUNTS)]), timeout=args.deadline * 3
                )
                future.add_done_callback(record)
            finished.wait(args.deadline * 3 + 10)
        ok = [t for c, t in done if c is grpc.StatusCode.OK]
        failed = [t for c, t in done if c is not grpc.StatusCode.OK]
        codes = Counter(c.name for c, _ in done)
        print(
            f"  {label:>4} {mounts:5d} mounts: ok {len(ok):4d} ({len(ok) / mounts:6.1%})"
            f"  ok p50 {pct(ok, 0.5):5.1f} s p99 {pct(ok, 0.99):5.1f} s"
            f"  failed p50 {pct(failed, 0.5):5.1f} s p99 {pct(failed, 0.99):5.1f} s"
        )
        print(f"       codes {dict(codes)}")
        print(f"       provider idle {idle}   peak {sampler.peak}")
        print(f"       backend requests forwarded {proxy.forwarded}")
    finally:
        provider.stop()
        proxy.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=32, help="the provider's --workers")
    parser.add_argument("--objects", type=int, default=10)
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per backend request")
    parser.add_argument("--deadline", type=float, default=20.0, help="the provider's mount timeout")
    parser.add_argument("--levels", default="1,2,5,10", help="multiples of the pool's capacity")
    args = parser.parse_args()
    capacity = int(args.workers * args.deadline / (args.objects * args.latency))
    print(
        f"overload: {args.objects}-object mounts, {args.latency:g} s per backend request, "
        f"{args.deadline:g} s mount deadline, {args.workers} workers -> the pool can finish "
        f"~{capacity} mounts per deadline"
    )
    with seeded_openbao(args.objects) as (address, signer):
        for factor in (float(f) for f in args.levels.split(",")):
            level(address, signer, args, max(1, int(capacity * factor)), f"{factor:g}x")


if __name__ == "__main__":
    main()
