"""Start-up time and memory of the provider, for the chart's requests and limits.

Runs ``python -m provider serve`` as a subprocess (as the container does) and
reads its memory from /proc:

* start-up to ready: from spawning the process until ``/readyz`` answers 200
  and a ``Version`` call through the socket succeeds (median of several starts);
* idle RSS right after start (no backend SDK imported yet);
* RSS during and after load: rounds of 64 concurrent mounts of 10 Secrets
  Manager objects each against a local moto server (one gRPC connection, like
  the driver); VmHWM is the peak;
* the cost of templates (issue 15): RSS before and after the first mount of a
  class with ``templates`` (Jinja2 is imported then, never at idle: the idle
  figure is the same with or without template support);
* RSS once the Vault and Azure SDKs are loaded too (one mount each against a
  closed local port: the SDK is imported, the fetch fails fast).

    python bench/memory.py [--rounds N] [--starts N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from provider.v1alpha1 import service_pb2, service_pb2_grpc  # noqa: E402
from tests.support.moto import REGION, ROLE_ARN, moto_server, seed_client  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.running import pod_attributes  # noqa: E402
from tests.support.tokens import pod_token  # noqa: E402

TOKEN = pod_token(["sts.amazonaws.com", "vault", "api://AzureADTokenExchange"])
CONCURRENCY = 64
OBJECTS = 10


def mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


class Provider:
    def __init__(self, socket_dir: Path, *args: str) -> None:
        self.port = free_port()
        self.socket = socket_dir / "polysecret.sock"
        self.spawned = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "provider", "serve", "--socket-dir", str(socket_dir),
             "--health-addr", f"127.0.0.1:{self.port}", "--log-level", "warning", *args],
            cwd=ROOT, stderr=subprocess.DEVNULL,
        )

    def wait_ready(self) -> float:
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("provider exited")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.005)
        with grpc.insecure_channel(f"unix:{self.socket}") as ch:
            service_pb2_grpc.CSIDriverProviderStub(ch).Version(
                service_pb2.VersionRequest(version="v1alpha1"), timeout=5
            )
        return time.perf_counter() - self.spawned

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def mount_request(params: dict[str, str], pod: str) -> service_pb2.MountRequest:
    return service_pb2.MountRequest(
        attributes=json.dumps(
            pod_attributes(params, pod=pod, tokens={"sts.amazonaws.com": TOKEN, "vault": TOKEN,
                                                    "api://AzureADTokenExchange": TOKEN})
        ),
        secrets="null", target_path="/tmp/target", permission="420",
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--starts", type=int, default=5)
    opts = ap.parse_args()
    # moto's request log would bury the figures.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    result: dict[str, Any] = {}

    with tempfile.TemporaryDirectory() as tmp:
        starts = []
        for i in range(opts.starts):
            p = Provider(Path(tmp) / f"s{i}")
            starts.append(p.wait_ready())
            if i == 0:
                time.sleep(1.0)
                result["idle_rss_mib"] = round(mib(p.proc.pid, "VmRSS"), 1)
            p.stop()
        result["startup_to_ready_s"] = {
            "median": round(statistics.median(starts), 3), "max": round(max(starts), 3),
        }

        with moto_server() as url:
            sm = seed_client(url, "secretsmanager")
            names = [f"bench/secret-{i}" for i in range(OBJECTS)]
            for n in names:
                sm.create_secret(Name=n, SecretString="x" * 64)
            sm.create_secret(Name="bench/db", SecretString=json.dumps({"user": "u", "port": 5432}))
            objects = "".join(f"- objectName: {n}\n  objectType: secretsmanager\n" for n in names)
            params = {"objects": objects, "region": REGION, "roleArn": ROLE_ARN}

            p = Provider(Path(tmp) / "load", "--aws-region", REGION, "--aws-endpoint-url", url)
            p.wait_ready()
            samples: list[float] = []
            stop = threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    samples.append(mib(p.proc.pid, "VmRSS"))
                    time.sleep(0.05)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            failures = 0
            started = time.perf_counter()
            with grpc.insecure_channel(f"unix:{p.socket}") as ch, \
                    ThreadPoolExecutor(CONCURRENCY) as pool:
                stub = service_pb2_grpc.CSIDriverProviderStub(ch)

                def one(i: int) -> bool:
                    try:
                        r = stub.Mount(mount_request(params, f"pod-{i}"), timeout=120)
                        return len(r.files) == OBJECTS
                    except grpc.RpcError:
                        return False

                for _ in range(opts.rounds):
                    failures += sum(not ok for ok in pool.map(one, range(CONCURRENCY)))
            elapsed = time.perf_counter() - started
            stop.set()
            sampler.join()
            result["load"] = {
                "mounts": CONCURRENCY * opts.rounds, "objects_per_mount": OBJECTS,
                "concurrency": CONCURRENCY, "failures": failures,
                "seconds": round(elapsed, 2),
                "rss_during_max_mib": round(max(samples), 1),
                "rss_after_mib": round(mib(p.proc.pid, "VmRSS"), 1),
                "peak_vmhwm_mib": round(mib(p.proc.pid, "VmHWM"), 1),
            }

            # The first class with templates imports the template engine.
            templated = {
                **params,
                "objects": objects
                + "- objectName: bench/db\n  objectType: secretsmanager\n  objectAlias: db\n",
                "templates": '- file: db.env\n  template: "USER={{ db.user }} {{ db.port }}"\n',
            }
            before = mib(p.proc.pid, "VmRSS")
            with grpc.insecure_channel(f"unix:{p.socket}") as ch:
                reply = service_pb2_grpc.CSIDriverProviderStub(ch).Mount(
                    mount_request(templated, "pod-t"), timeout=60
                )
            rendered = {f.path: f.contents for f in reply.files}.get("db.env", b"")
            result["first_template_mount"] = {
                "rss_before_mib": round(before, 1),
                "rss_after_mib": round(mib(p.proc.pid, "VmRSS"), 1),
                "rendered": rendered.decode(),
            }

            # Load the other two SDKs as well (the fetches fail fast on a closed port).
            closed = f"127.0.0.1:{free_port()}"
            with grpc.insecure_channel(f"unix:{p.socket}") as ch:
                stub = service_pb2_grpc.CSIDriverProviderStub(ch)
                for extra in (
                    {"backend": "vault", "roleName": "app", "vaultAddress": f"http://{closed}",
                     "objects": "- objectName: a\n  secretPath: secret/data/a\n"},
                    {"backend": "azure", "keyvaultName": "kv1", "tenantID": "t", "clientID": "c",
                     "objects": "array:\n  - |\n    objectName: a\n    objectType: secret\n"},
                ):
                    with contextlib.suppress(grpc.RpcError):
                        stub.Mount(mount_request(extra, "pod-x"), timeout=60)
            time.sleep(0.5)
            result["all_sdks_loaded"] = {
                "rss_mib": round(mib(p.proc.pid, "VmRSS"), 1),
                "peak_vmhwm_mib": round(mib(p.proc.pid, "VmHWM"), 1),
            }
            p.stop()

    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
