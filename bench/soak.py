"""A soak: thousands of mounts, printing the provider's RSS, open fds and threads over time.

Why: every cache and pool must be bounded (issue 10, item 9); a leak of one
connection, thread or client per mount shows here as a line that keeps
climbing. Mounts are what a node's rotation polls look like: a few
service accounts mounting the same classes against moto (Secrets Manager via
STS AssumeRoleWithWebIdentity), several at a time. The provider is its own
process, so the figures are its alone. Prints figures only; the CI-sized
version with tolerances is tests/faults/test_soak.py.

    python bench/soak.py [--mounts 3000] [--concurrency 4] [--seconds 300]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from provider.v1alpha1 import service_pb2  # noqa: E402
from tests.faults.provider_process import ProviderProcess  # noqa: E402
from tests.support.moto import REGION, ROLE_ARN, moto_server, seed_client  # noqa: E402
from tests.support.running import pod_attributes  # noqa: E402
from tests.support.tokens import pod_token  # noqa: E402

ACCOUNTS = [f"app-{i}" for i in range(5)]
CLASSES = 3
OBJECTS = 4


def requests() -> list[service_pb2.MountRequest]:
    """One request per (service account, class): what a node's pods re-send every poll."""
    out = []
    for c in range(CLASSES):
        objects = "\n".join(
            f"- objectName: soak/c{c}-s{i}\n  objectType: secretsmanager" for i in range(OBJECTS)
        )
        for sa in ACCOUNTS:
            token = pod_token("sts.amazonaws.com", service_account=sa)
            attrs = pod_attributes({"objects": objects, "roleArn": ROLE_ARN}, service_account=sa,
                                   tokens={"sts.amazonaws.com": token})
            out.append(service_pb2.MountRequest(attributes=json.dumps(attrs), secrets="null",
                                                target_path="/tmp/soak", permission="420"))
    return out


def soak(provider: ProviderProcess, mounts: int, concurrency: int, seconds: float,
         every: int) -> None:
    batch = requests()
    started = time.monotonic()
    print(f"  {'mounts':>7} {'seconds':>8}  {provider.usage()}   (idle)")
    done = 0
    with ThreadPoolExecutor(concurrency) as pool:
        while done < mounts and time.monotonic() - started < seconds:
            step = min(every, mounts - done)
            list(pool.map(lambda i: provider.stub.Mount(batch[i % len(batch)], timeout=30),
                          range(done, done + step)))
            done += step
            print(f"  {done:7d} {time.monotonic() - started:8.1f}  {provider.usage()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mounts", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=300.0, help="stop after this long")
    parser.add_argument("--every", type=int, default=250, help="print after this many mounts")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's access log
    with moto_server() as url:
        sm = seed_client(url, "secretsmanager")
        for c in range(CLASSES):
            for i in range(OBJECTS):
                sm.create_secret(Name=f"soak/c{c}-s{i}", SecretString=f"value-{c}-{i}")
        print(f"soak: {args.mounts} mounts of {OBJECTS} objects, {len(ACCOUNTS)} service "
              f"accounts x {CLASSES} classes, {args.concurrency} at a time, against moto")
        with ProviderProcess("--aws-endpoint-url", url, "--aws-region", REGION) as provider:
            soak(provider, args.mounts, args.concurrency, args.seconds, args.every)


if __name__ == "__main__":
    main()
