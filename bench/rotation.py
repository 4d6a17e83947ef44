"""Backend reads per rotation round with the rotation cache: moto, OpenBao, the Azure stand-in.

N pods (1, 10, 100) of service account ``app`` plus 10 pods of ``other``, each
mounting 10 objects, then rotation rounds sent as the driver sends them (every
pod again, with the ``current_object_version`` of its last answer). Reads are
counted **at the backend**: a counting proxy in front of moto and OpenBao
(tests/support/faultproxy.py), the stand-in's own request log for Azure.
The peers read every object of every pod on every round: (N + 10) x 10.

Rounds are spaced just past the class's refreshInterval (1 s here, standing in
for the default 60 s against the driver's 2-minute poll), so every round after
the first is a fresh window: the cache's goal is one read per (identity,
object) per window, i.e. 2 x 10 = 20 per round whatever N. A PKI row shows
short-lived certificates (OpenBao, 30 s TTL): issued once per pod, then 0
re-issues per poll before 2/3 of their life. The last section measures what
600 distinct ``vaultAddress`` values cost (issue 10, item 9).

    python bench/rotation.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.faultproxy import FaultProxy  # noqa: E402
from tests.support.running import (  # noqa: E402
    RunningProvider,
    pod_attributes,
    settings_for,
    versions_of,
)
from tests.support.tokens import pod_token  # noqa: E402

OBJECTS = 10
OTHER_PODS = 10
WINDOW = "1s"
GAP = 1.15  # seconds between rounds: just past the window


@dataclass
class World:
    """One backend ready to mount: provider settings, attributes per pod, a read counter."""

    name: str
    backends: dict[str, Any]
    attrs: Callable[[str, str, str], dict[str, str]]  # (service account, pod, uid)
    reads: Callable[[], int]
    logins: Callable[[], int]


# -- the three backends ------------------------------------------------------------


@contextlib.contextmanager
def aws_world() -> Iterator[World]:
    from provider.backends.aws import AwsSettings
    from tests.support.moto import REGION, ROLE_ARN, moto_server, seed_client

    with moto_server() as url:
        sm = seed_client(url, "secretsmanager")
        for i in range(OBJECTS):
            sm.create_secret(Name=f"rot-{i}", SecretString=f"value-{i}")
        proxy = FaultProxy.in_front_of(url)
        objects = "".join(
            f"- {{objectName: rot-{i}, objectType: secretsmanager}}\n" for i in range(OBJECTS)
        )

        def attrs(sa: str, pod: str, uid: str) -> dict[str, str]:
            a = pod_attributes(
                {"roleArn": ROLE_ARN, "objects": objects, "refreshInterval": WINDOW},
                service_account=sa, pod=pod,
                tokens={"sts.amazonaws.com": pod_token("sts.amazonaws.com", "default", sa)},
            )
            a["csi.storage.k8s.io/pod.uid"] = uid
            return a

        try:
            yield World(
                "AWS Secrets Manager (moto)",
                {"aws": AwsSettings(region=REGION, endpoint_url=proxy.url())},
                attrs,
                lambda: proxy.count(match=lambda r: r.operation == "GetSecretValue"),
                lambda: proxy.count(match=lambda r: r.operation == "AssumeRoleWithWebIdentity"),
            )
        finally:
            proxy.close()


@contextlib.contextmanager
def bao_world(*, pki: bool = False) -> Iterator[World]:
    from provider.backends.vault import VaultSettings
    from tests.support.openbao import (
        AUTH_MOUNT,
        TokenSigner,
        add_policy,
        add_role,
        enable_jwt_auth,
        openbao_server,
    )

    signer = TokenSigner()
    with openbao_server() as bao:
        root = bao.client()
        enable_jwt_auth(root, signer, AUTH_MOUNT)
        for i in range(OBJECTS):
            root.secrets.kv.v2.create_or_update_secret(
                path=f"rot-{i}", mount_point="secret", secret={"value": f"value-{i}"}
            )
        root.sys.enable_secrets_engine("pki", path="pki", config={"max_lease_ttl": "87600h"})
        root.write_data("pki/root/generate/internal", data={"common_name": "bench", "ttl": "24h"})
        root.write_data("pki/roles/web", data={"allowed_domains": ["example.com"],
                                                "allow_subdomains": True, "max_ttl": "1h"})
        add_policy(root, "read", {"secret/data/*": ["read"], "pki/issue/web": ["update"]})
        add_role(root, "app", ["app", "other"], ["read"])
        proxy = FaultProxy.in_front_of(bao.address)
        if pki:
            objects = (
                "- objectName: tls.crt\n  secretPath: pki/issue/web\n  secretKey: certificate\n"
                "  method: PUT\n  secretArgs:\n    common_name: web.example.com\n    ttl: 30s\n"
            )
            path = "/v1/pki/issue/web"
        else:
            objects = "".join(
                f"- objectName: o{i}\n  secretPath: secret/data/rot-{i}\n  secretKey: value\n"
                for i in range(OBJECTS)
            )
            path = "/v1/secret/data/"

        def attrs(sa: str, pod: str, uid: str) -> dict[str, str]:
            a = pod_attributes(
                {"roleName": "app", "objects": objects, "refreshInterval": WINDOW},
                service_account=sa, pod=pod, tokens={"vault": signer.token(sa)},
            )
            a["csi.storage.k8s.io/pod.uid"] = uid
            return a

        try:
            yield World(
                "OpenBao PKI, 30 s certificates" if pki else "OpenBao KV v2",
                {"vault": VaultSettings(address=proxy.url())},
                attrs,
                lambda: proxy.count(match=lambda r: r.path.startswith(path)),
                lambda: proxy.count(match=lambda r: r.path.endswith("/login")),
            )
        finally:
            proxy.close()


@contextlib.contextmanager
def azure_world_() -> Iterator[World]:
    from tests.support.azure_standin import AUDIENCE, TENANT, WI_CLIENT, azure_world

    with azure_world() as world:
        world.tokens.federated_subjects[WI_CLIENT] = {
            f"system:serviceaccount:default:{sa}" for sa in ("app", "other")
        }
        for i in range(OBJECTS):
            world.vault.set_secret(f"rot-{i}", f"value-{i}")
        objects = "array:\n" + "".join(
            f"  - |\n    objectName: rot-{i}\n    objectType: secret\n" for i in range(OBJECTS)
        )

        def attrs(sa: str, pod: str, uid: str) -> dict[str, str]:
            a = pod_attributes(
                {"keyvaultName": "benchvault", "tenantID": TENANT, "clientID": WI_CLIENT,
                 "objects": objects, "refreshInterval": WINDOW},
                service_account=sa, pod=pod,
                tokens={AUDIENCE: pod_token(AUDIENCE, "default", sa)},
            )
            a["csi.storage.k8s.io/pod.uid"] = uid
            return a

        yield World(
            "Azure Key Vault (stand-in)",
            {"azure": world.settings()},
            attrs,
            lambda: sum(1 for m, p, s in world.vault.requests
                        if m == "GET" and p.startswith("/secrets/rot-") and s == 200),
            lambda: sum(1 for r in world.tokens.requests if r.endswith("/token")),
        )


# -- the rounds ---------------------------------------------------------------------------


def run_rounds(world: World, pods: int, rounds: int) -> list[tuple[int, int, int]]:
    """(round, backend reads, logins) per round; round 0 is every pod starting."""
    fleet = [("app", f"app-{i}") for i in range(pods)]
    fleet += [("other", f"other-{i}") for i in range(OTHER_PODS)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp, RunningProvider(
        settings_for(Path(tmp), world.backends, refresh_default=60.0, workers=32)
    ) as provider:
        versions: dict[str, dict[str, str]] = {}

        def mount(member: tuple[str, str]) -> None:
            sa, pod = member
            answer = provider.mount(world.attrs(sa, pod, f"uid-{pod}"),
                                    current_versions=versions.get(pod, {}))
            versions[pod] = versions_of(answer)

        with ThreadPoolExecutor(16) as pool:
            for r in range(rounds + 1):
                if r:
                    time.sleep(GAP)
                reads, logins = world.reads(), world.logins()
                list(pool.map(mount, fleet))
                rows.append((r, world.reads() - reads, world.logins() - logins))
    return rows


def rotation_table(quick: bool) -> None:
    sizes = (1, 10) if quick else (1, 10, 100)
    rounds = 2 if quick else 3
    print(f"Backend reads per rotation round ({OBJECTS} objects per pod, +{OTHER_PODS} pods of "
          f"a second service account, refreshInterval {WINDOW}, rounds {GAP}s apart)")
    print(f"{'backend':34s} {'pods':>5s} {'round':>5s} {'reads':>6s} {'logins':>6s} "
          f"{'peers (pods x 10)':>18s}")
    for make in (aws_world, bao_world, azure_world_):
        with make() as world:
            for n in sizes:
                for r, reads, logins in run_rounds(world, n, rounds):
                    pods = n + OTHER_PODS
                    print(f"{world.name:34s} {pods:5d} {r:5d} {reads:6d} {logins:6d} "
                          f"{pods * OBJECTS:18d}")


def pki_table(quick: bool) -> None:
    sizes = (1, 10) if quick else (1, 10, 100)
    print("\nShort-lived certificates: issues per round (one per pod at start, 0 per poll "
          "before 2/3 of 30 s); the peer issues one per pod per poll")
    print(f"{'backend':34s} {'pods':>5s} {'round':>5s} {'issues':>6s} {'peers':>6s}")
    with bao_world(pki=True) as world:
        for n in sizes:
            for r, issues, _ in run_rounds(world, n, 2 if quick else 3):
                pods = n + OTHER_PODS
                print(f"{world.name:34s} {pods:5d} {r:5d} {issues:6d} {pods:6d}")


# -- issue 10 item 9: what distinct vaultAddress values cost ------------------------------


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def address_churn(quick: bool) -> None:
    """600 classes with distinct vaultAddress values, each refused with a kept-alive 403."""
    from provider.backends.vault import VaultSettings
    from provider.backends.vault.transport import MAX_TRANSPORTS

    class Refuse(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return None

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b'{"errors":["permission denied"]}'
            self.send_response(403)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("0.0.0.0", 0), Refuse)  # noqa: S104 - every 127.0.0.x
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    count = 150 if quick else 600
    token = pod_token("vault")
    try:
        with tempfile.TemporaryDirectory() as tmp, RunningProvider(
            settings_for(Path(tmp), {"vault": VaultSettings()})
        ) as provider:

            def attempt(i: int) -> None:
                address = f"http://127.0.{1 + i // 250}.{1 + i % 250}:{port}"
                attrs = pod_attributes(
                    {"roleName": "r", "vaultAddress": address,
                     "objects": "- {objectName: a, secretPath: secret/data/a}"},
                    tokens={"vault": token},
                )
                with contextlib.suppress(Exception):
                    provider.mount(attrs)

            attempt(0)  # the Vault backend built
            rss, fds = _rss_kib(), len(os.listdir("/proc/self/fd"))
            for i in range(1, count + 1):
                attempt(i)
            time.sleep(0.3)
            backend = provider.run(provider.app.registry.get("vault"))
            print(f"\n{count} distinct vaultAddress values (issue 10 measured +496 MiB, +600 fds "
                  f"for 600): RSS +{(_rss_kib() - rss) / 1024:.1f} MiB, "
                  f"fds +{len(os.listdir('/proc/self/fd')) - fds} (client and server side, "
                  f"in one process), sessions kept {len(backend.transports)} "
                  f"(bound {MAX_TRANSPORTS}), evicted {backend.transports.stats().evictions}")
    finally:
        server.shutdown()
        server.server_close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer pods and rounds")
    args = parser.parse_args()
    rotation_table(args.quick)
    pki_table(args.quick)
    address_churn(args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
