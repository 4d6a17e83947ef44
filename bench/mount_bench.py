"""Mount latency, throughput, CPU and memory of the provider against local backends.

Prints figures; asserts nothing (timings on a shared 2-core machine are noisy:
compare the ratios within one run). AWS rows run the real server as a
subprocess (`python -m provider serve`) against a moto server subprocess, so
its RSS and CPU time can be read from /proc. Baselines fetch the same objects
one after another with plain boto3: "peer-style" does what the AWS provider
does on every mount (new session, STS AssumeRoleWithWebIdentity, new client),
"warm sequential" reuses one client. Vault and Azure rows (when their test
support is present) run the provider in-process against OpenBao / the Key Vault stand-in.

    python bench/mount_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from provider.v1alpha1 import service_pb2, service_pb2_grpc  # noqa: E402
from tests.support.faultproxy import FaultProxy  # noqa: E402
from tests.support.moto import ROLE_ARN  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.running import pod_attributes  # noqa: E402
from tests.support.tokens import pod_token  # noqa: E402

REGION = "us-east-1"
TOKEN = pod_token("sts.amazonaws.com")
CLK_TCK = os.sysconf("SC_CLK_TCK")



def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(x: float) -> str:
    return f"{x * 1000:8.2f}"


def objects_yaml(n: int) -> str:
    return "".join(
        f"- objectName: bench/secret-{i:03d}\n  objectType: secretsmanager\n" for i in range(n)
    )


class Client:
    def __init__(self, sock: Path) -> None:
        self.channel = grpc.insecure_channel(f"unix:{sock}")
        self.stub = service_pb2_grpc.CSIDriverProviderStub(self.channel)

    def mount(self, attributes: dict[str, str], secrets: dict[str, str] | None = None) -> float:
        request = service_pb2.MountRequest(
            attributes=json.dumps(attributes),
            secrets="null" if secrets is None else json.dumps(secrets),
            target_path="/tmp/bench",
            permission="420",
        )
        t = time.perf_counter()
        response = self.stub.Mount(request, timeout=60, wait_for_ready=True)
        elapsed = time.perf_counter() - t
        assert response.object_version, "mount returned no versions"
        return elapsed


def latency_row(label: str, fn: Callable[[], float], rounds: int) -> list[float]:
    for _ in range(2):
        fn()  # warm-up: imports, clients, credentials
    samples = [fn() for _ in range(rounds)]
    print(f"  {label:<44} p50 {ms(pct(samples, 0.5))} ms   p99 {ms(pct(samples, 0.99))} ms")
    return samples


def timed(fn: Callable[[], Any]) -> Callable[[], float]:
    def run() -> float:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    return run


def aws_rows(quick: bool) -> None:
    import boto3

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    work = Path(tempfile.mkdtemp(prefix="polysecret-bench-"))
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server: subprocess.Popen[bytes] | None = None
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        sts = boto3.client(
            "sts",
            region_name=REGION,
            endpoint_url=url,
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        c = sts.assume_role(RoleArn=ROLE_ARN, RoleSessionName="seed")["Credentials"]
        creds = {
            "aws_access_key_id": c["AccessKeyId"],
            "aws_secret_access_key": c["SecretAccessKey"],
            "aws_session_token": c["SessionToken"],
        }
        sm = boto3.client("secretsmanager", region_name=REGION, endpoint_url=url, **creds)
        for i in range(50):
            sm.create_secret(
                Name=f"bench/secret-{i:03d}",
                SecretString=json.dumps({"user": f"u{i}", "password": "p" * 32}),
            )

        started = time.perf_counter()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "provider",
                "serve",
                "--socket-dir",
                str(work),
                "--aws-endpoint-url",
                url,
                "--aws-region",
                REGION,
                "--log-level",
                "warning",
                # Every mount reads the backend (what the rows compare); bench/rotation.py
                # measures the object cache.
                "--refresh-interval",
                "0",
            ],
            env=env,
            cwd=ROOT,
        )
        sock = work / "polysecret.sock"
        while not sock.exists():
            time.sleep(0.01)
        client = Client(sock)
        client.stub.Version(service_pb2.VersionRequest(version="v1alpha1"), wait_for_ready=True)
        print(f"provider start-up to first answer: {ms(time.perf_counter() - started)} ms")
        print(f"provider RSS idle (no backend SDK loaded yet): {rss_mib(server.pid):6.1f} MiB")

        rounds = 10 if quick else 40
        print("\nAWS Secrets Manager (moto), sequential mounts, one service account")
        first = client.mount(
            pod_attributes(
                {"roleArn": ROLE_ARN, "objects": objects_yaml(1)},
                tokens={"sts.amazonaws.com": TOKEN},
            )
        )
        print(f"  first mount ever (imports boto3, STS, client): {ms(first)} ms")
        for n in (1, 10, 50):
            attrs = pod_attributes(
                {"roleArn": ROLE_ARN, "objects": objects_yaml(n)},
                tokens={"sts.amazonaws.com": TOKEN},
            )
            cpu0 = cpu_seconds(server.pid)
            mounts = latency_row(
                f"provider mount, {n:2d} objects", lambda a=attrs: client.mount(a), rounds
            )
            cpu = (cpu_seconds(server.pid) - cpu0) / (len(mounts) + 2)
            names = [f"bench/secret-{i:03d}" for i in range(n)]

            def warm(names: list[str] = names) -> None:
                for name in names:
                    sm.get_secret_value(SecretId=name)

            def peer(names: list[str] = names) -> None:
                session = boto3.session.Session()
                s = session.client(
                    "sts",
                    region_name=REGION,
                    endpoint_url=url,
                    aws_access_key_id="x",
                    aws_secret_access_key="x",
                )
                cc = s.assume_role_with_web_identity(
                    RoleArn=ROLE_ARN, RoleSessionName="peer", WebIdentityToken=TOKEN
                )["Credentials"]
                cl = session.client(
                    "secretsmanager",
                    region_name=REGION,
                    endpoint_url=url,
                    aws_access_key_id=cc["AccessKeyId"],
                    aws_secret_access_key=cc["SecretAccessKey"],
                    aws_session_token=cc["SessionToken"],
                )
                for name in names:
                    cl.get_secret_value(SecretId=name)

            w = latency_row(f"plain boto3, warm client, {n:2d} sequential", timed(warm), rounds)
            p = latency_row(
                f"plain boto3, peer-style per mount, {n:2d} seq", timed(peer), max(5, rounds // 4)
            )
            print(
                f"    -> provider CPU per mount {cpu * 1000:.2f} ms; speed-up vs warm sequential "
                f"x{statistics.median(w) / statistics.median(mounts):.2f}, vs peer-style "
                f"x{statistics.median(p) / statistics.median(mounts):.2f}"
            )

        proxy = FaultProxy(port, raw=True, latency=0.010)
        delayed = work / "delayed"
        slow = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "provider",
                "serve",
                "--socket-dir",
                str(delayed),
                "--aws-endpoint-url",
                f"http://127.0.0.1:{proxy.port}",
                "--aws-region",
                REGION,
                "--log-level",
                "warning",
                # Every mount reads the backend (what the rows compare); bench/rotation.py
                # measures the object cache.
                "--refresh-interval",
                "0",
            ],
            env=env,
            cwd=ROOT,
        )
        try:
            while not (delayed / "polysecret.sock").exists():
                time.sleep(0.01)
            slow_client = Client(delayed / "polysecret.sock")
            slow_sm = boto3.client(
                "secretsmanager",
                region_name=REGION,
                endpoint_url=f"http://127.0.0.1:{proxy.port}",
                **creds,
            )
            print(
                "\nAWS with 10 ms simulated network latency per request "
                "(a real region is 5-30 ms away)"
            )
            for n in (1, 10, 50):
                attrs = pod_attributes(
                    {"roleArn": ROLE_ARN, "objects": objects_yaml(n)},
                    tokens={"sts.amazonaws.com": TOKEN},
                )
                mounts = latency_row(
                    f"provider mount, {n:2d} objects", lambda a=attrs: slow_client.mount(a), rounds
                )
                names = [f"bench/secret-{i:03d}" for i in range(n)]

                def slow_warm(names: list[str] = names) -> None:
                    for name in names:
                        slow_sm.get_secret_value(SecretId=name)

                w = latency_row(
                    f"plain boto3, warm client, {n:2d} sequential", timed(slow_warm), rounds
                )
                print(
                    "    -> speed-up vs warm sequential x"
                    f"{statistics.median(w) / statistics.median(mounts):.2f}"
                )
        finally:
            slow.terminate()
            slow.wait(10)
            proxy.close()

        print("\nAWS, concurrent mounts of a 10-object class (same service account)")
        attrs10 = pod_attributes(
            {"roleArn": ROLE_ARN, "objects": objects_yaml(10)}, tokens={"sts.amazonaws.com": TOKEN}
        )
        for conc in (1, 16, 64):
            total = max(conc * (2 if quick else 4), 16)
            clients = [Client(sock) for _ in range(min(conc, 8))]
            cpu0 = cpu_seconds(server.pid)
            t0 = time.perf_counter()
            with ThreadPoolExecutor(conc) as pool:
                lat = list(
                    pool.map(lambda i, cl=clients: cl[i % len(cl)].mount(attrs10), range(total))
                )
            wall = time.perf_counter() - t0
            cpu = (cpu_seconds(server.pid) - cpu0) / total
            print(
                f"  {conc:2d} concurrent: {total:3d} mounts  p50 {ms(pct(lat, 0.5))} ms  "
                f"p99 {ms(pct(lat, 0.99))} ms  {total / wall:7.1f} mounts/s  "
                f"CPU/mount {cpu * 1000:.2f} ms"
            )
        print(f"\nprovider RSS after the AWS run: {rss_mib(server.pid):6.1f} MiB")
    finally:
        for proc in (server, moto):
            if proc is not None:
                proc.terminate()
                proc.wait(10)


def in_process_rows(backend: str, module: str, quick: bool) -> None:
    """Vault / Azure: the provider in-process against the real server."""
    import importlib

    try:
        support = importlib.import_module(module)
    except ImportError as exc:
        print(f"\n{backend}: skipped ({exc})")
        return
    from tests.support.running import RunningProvider, settings_for

    rounds = 10 if quick else 30
    for delay, title in (
        (0.0, "(in-process provider, real server), sequential mounts"),
        (0.010, "with 10 ms simulated network latency per request (FaultProxy)"),
    ):
        print(f"\n{backend} {title}")
        for n in (1, 10):
            try:
                with support.bench_env(n, delay=delay) as env:
                    work = Path(tempfile.mkdtemp(prefix=f"polysecret-bench-{backend}-"))
                    settings = settings_for(work, {backend: env.settings})
                    with RunningProvider(settings, env.environ) as p:
                        attrs = pod_attributes(env.parameters, tokens=env.tokens)
                        mount = latency_row(
                            f"provider mount, {n:2d} objects",
                            timed(lambda a=attrs, e=env: p.mount(a, secrets=e.secrets)),
                            rounds,
                        )
                        if env.sequential_fetch is not None:
                            base = latency_row(
                                f"plain SDK, peer-style per mount, {n:2d} seq",
                                timed(env.sequential_fetch),
                                max(5, rounds // 3),
                            )
                            print(
                                "    -> speed-up x"
                                f"{statistics.median(base) / statistics.median(mount):.2f}"
                            )
            except Exception as exc:  # a missing server must not hide the other rows
                print(f"  {backend} {n} objects: failed: {type(exc).__name__}: {exc}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--only", choices=["aws", "vault", "azure"], default=None)
    args = parser.parse_args()
    if args.only in (None, "aws"):
        aws_rows(args.quick)
    if args.only in (None, "vault"):
        in_process_rows("vault", "tests.support.openbao", args.quick)
    if args.only in (None, "azure"):
        in_process_rows("azure", "tests.support.azure_standin", args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
