"""CPU and memory per cold mount, per backend, next to the Go peers' figures.

A cold mount is one that reaches the backend: every pod start, every refresh,
every node after a restart. The provider runs in its own process (so its CPU
time and RSS are its own, read from /proc), built exactly as the tests build it
(tests.support.running.RunningProvider) from settings handed over in a pickle;
the backends (moto, OpenBao, the Key Vault stand-in) run beside it. Each mount
comes from a new pod of the same service account, as in the peers' runs; the
class sets ``refreshInterval: "0"`` where the rotation cache exists, so every
object is really read.

    python bench/cost.py [--mounts N] [--backends aws,vault,azure] [--sizes 1,10,50]
                         [--event-loop auto|uvloop|asyncio] [--moto-closes]

Prints figures; asserts nothing (the machine is shared: compare within a run).
The last column, "host ref", is the CPU time of a fixed pure-Python loop run
beside each row (before and after it): the host's speed varies by +-20 %
from minute to minute, so compare rows measured at similar references.

"Go SDK" is the in-run Go baseline (bench/gobaseline, built once per run with
``go build`` into $POLYSECRET_CACHE/gobaseline/): right after our measured
mounts, a Go program makes the same backend requests per mount (login or
token, then one read per object, one after another) with the SDK the peer
uses, against the same server and objects, as many mounts, and reports the CPU
it spent per mount. The real peers also run a gRPC server, call the Kubernetes
API per mount and parse more config, so this is a LOWER bound of the peer's
CPU measured at the same moment: where "ours/Go SDK" is at or below x1.00,
ours is at or below the peer. Without ``go`` or when the build fails, the
column reads "-" and a note says why.

``--event-loop`` picks our server's loop (provider/eventloop.py; ``auto``,
the default, is uvloop when installed, as ``serve`` does). moto is served by
waitress, which keeps connections open as AWS's endpoints do, for ours, the Go
baseline and the peer alike; ``--moto-closes`` serves it as moto's own server
does (werkzeug: ``Connection: close`` after every answer, so every request of
every client pays a TCP connect).

"peer now" is THE REAL PEER (bench/peers.py: vault-csi-provider 1.7.4, the AWS
provider 3.1.1, the Azure provider 1.8.2; built once into
$POLYSECRET_CACHE/peers/), run as its own process right after the Go baseline
against the same server and objects, sent the same Mount requests (new pod per
mount, 2 warm-up mounts, as many measured), its CPU read from /proc exactly as
ours. Its Kubernetes API calls are answered by tests/support/kube_standin.py
(no cluster runs here), the cloud names it calls lead to moto and the Azure
stand-ins through tests/support/tls_tunnel.py. This replaces comparing with
"peer CPU" (performance.md, measured at another time on a host whose speed
drifts by up to ~1.7x), which stays for reference. Every peer mount must
return one non-empty file per object, else the row says "peer failed:
<reason>" instead of a figure; without the peer (no ``go``, a failed build)
the column reads "-" and the first lines say why.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLK_TCK = os.sysconf("SC_CLK_TCK")

# ../shared/spec/performance.md: the Go peers measured here, CPU ms per mount
# for 1 / 10 / 50 objects on loopback, and their RSS (idle, after ~600 mounts).
PEER_CPU_MS = {
    "vault": {1: 1.8, 10: 5.0, 50: 11.9},
    "aws": {1: 6.7, 10: 18.0, 50: 72.5},
    "azure": {1: 3.0, 10: 6.0},
}
PEER_RSS_MIB = {"vault": "32-33 / up to 65", "aws": "29-31 / up to 65", "azure": "19 / 27+"}
# Issue 16's goal for ours: idle at most 40 MiB, growth under 20 MiB per backend in use.
GOAL = "goal: idle <= 40 MiB, growth < 20 MiB per backend"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- the provider's own process ------------------------------------------------


def serve_rss(starts: int = 3) -> list[tuple[float, float]]:
    """RSS of ``python -m provider serve`` (as the container runs it): idle, then warm.

    Idle: before any request. Warm: after what every node soon sees that
    needs no backend: kubelet's probes (``/healthz`` makes a gRPC call of its
    own), a Prometheus scrape and one mount refused before any backend (its
    class is parsed). The difference is the core's first-request imports
    (prometheus_client, PyYAML, the gRPC client), so the per-backend growth
    below, measured from idle, holds them too. The per-backend rows run the
    provider through the test harness (to hand it the backends' settings).
    """
    import urllib.request

    import grpc

    from provider.v1alpha1 import service_pb2, service_pb2_grpc
    from tests.support.ports import free_port

    found = []
    for _ in range(starts):
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            proc = subprocess.Popen(
                [sys.executable, "-m", "provider", "serve", "--socket-dir", tmp,
                 "--health-addr", f"127.0.0.1:{port}", "--log-level", "warning"],
                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                socket = Path(tmp, "polysecret.sock")
                deadline = time.monotonic() + 30
                while not socket.exists() and time.monotonic() < deadline:
                    time.sleep(0.02)
                time.sleep(1.0)  # the HTTP endpoint and health state follow the socket
                idle = rss_mib(proc.pid)
                for _ in range(3):
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz") as r:
                        r.read()
                with grpc.insecure_channel(f"unix:{socket}") as channel:
                    refused = service_pb2.MountRequest(
                        attributes=json.dumps({"objects": "- objectName: a\n"}),
                        secrets="{}", target_path="/tmp/x", permission="420",
                    )  # fmt: skip
                    with contextlib.suppress(grpc.RpcError):
                        service_pb2_grpc.CSIDriverProviderStub(channel).Mount(refused, timeout=10)
                time.sleep(0.5)
                found.append((idle, rss_mib(proc.pid)))
            finally:
                proc.terminate()
                proc.wait(30)
    return found


def child(handover: str) -> int:
    """Serve with the pickled settings until SIGTERM (runs in the measured process)."""
    from tests.support.running import RunningProvider

    with open(handover, "rb") as fh:
        settings, environ = pickle.load(fh)  # noqa: S301 - our own file, just written
    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    with RunningProvider(settings, environ):
        print("ready", flush=True)
        while not stop:
            time.sleep(0.05)
    return 0


@contextlib.contextmanager
def provider_process(settings: Any, environ: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    with tempfile.NamedTemporaryFile("wb", suffix=".pickle", delete=False) as fh:
        pickle.dump((settings, environ), fh)
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", fh.name],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the provider process did not start")
        yield proc
    finally:
        proc.terminate()
        proc.wait(30)
        os.unlink(fh.name)


# -- the in-run Go baseline -------------------------------------------------------

GO_BASELINE_SRC = ROOT / "bench" / "gobaseline"


def build_go_baseline() -> tuple[Path | None, str]:
    """Build bench/gobaseline once; (the binary, "") or (None, why not)."""
    go = shutil.which("go")
    if go is None:
        return None, "no Go baseline: `go` is not on PATH"
    cache = Path(os.environ.get("POLYSECRET_CACHE", Path.home() / ".cache" / "polysecret"))
    binary = cache / "gobaseline" / "gobaseline"
    binary.parent.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            [go, "build", "-o", str(binary), "."],
            cwd=GO_BASELINE_SRC, check=True, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    except subprocess.CalledProcessError as exc:
        return None, f"no Go baseline: go build failed: {exc.stderr.strip()[-300:]}"
    except subprocess.TimeoutExpired:
        return None, "no Go baseline: go build took over 600 s"
    return binary, ""


def go_baseline_ms(binary: Path, env: Any, n_objects: int, mounts: int) -> float:
    """CPU ms per mount of the Go peer's SDK doing the same requests (see the docstring).

    A lower bound of the peer's CPU: the peer does this and more per mount.
    """
    flags = {"-backend": env.backend, "-objects": str(n_objects), "-mounts": str(mounts)}
    argv = [str(binary)] + [f"{k}={v}" for k, v in {**flags, **env.go_baseline_args}.items()]
    proc = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=600)
    return float(json.loads(proc.stdout)["cpu_ms_per_mount"])


# -- backends ------------------------------------------------------------------

# moto on a server that keeps connections open, as AWS's endpoints do (werkzeug,
# moto's own, closes after every answer: every request pays a TCP connect);
# --moto-closes sets it False.
MOTO_KEEP_ALIVE = True


@contextlib.contextmanager
def aws_env(n_objects: int) -> Iterator[Any]:
    from provider.backends import load_all_settings
    from provider.cli import build_parser
    from tests.support.benchenv import BenchEnv
    from tests.support.moto import REGION, ROLE_ARN, moto_server, seed_client
    from tests.support.tokens import pod_token

    token = pod_token("sts.amazonaws.com")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # moto keeps its state per process: a fresh prefix per run.
    prefix = f"cost-{uuid.uuid4().hex[:8]}"
    with moto_server(keep_alive=MOTO_KEEP_ALIVE) as url:
        sm = seed_client(url, "secretsmanager")
        for i in range(n_objects):
            sm.create_secret(
                Name=f"{prefix}/secret-{i:03d}",
                SecretString=json.dumps({"user": f"u{i}", "password": "p" * 32}),
            )
        args = build_parser().parse_args(
            ["serve", "--aws-endpoint-url", url, "--aws-region", REGION]
        )
        environ = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
        objects = "".join(
            f"- objectName: {prefix}/secret-{i:03d}\n  objectType: secretsmanager\n"
            for i in range(n_objects)
        )
        yield BenchEnv(
            backend="aws",
            settings=load_all_settings(args, environ)["aws"],
            parameters={"roleArn": ROLE_ARN, "objects": objects},
            tokens={"sts.amazonaws.com": token},
            environ=environ,
            go_baseline_args={
                "-endpoint": url,
                "-region": REGION,
                "-name-prefix": prefix,
                "-role-arn": ROLE_ARN,
                "-token": token,
            },
        )


def backend_env(backend: str, n_objects: int) -> contextlib.AbstractContextManager[Any]:
    if backend == "aws":
        return aws_env(n_objects)
    if backend == "vault":
        from tests.support.openbao import bench_env

        return bench_env(n_objects)
    from tests.support.azure_standin import bench_env as azure_bench_env

    return azure_bench_env(n_objects)


# -- measuring -----------------------------------------------------------------


def cold_mount(
    env: Any, params: dict[str, str], work: Path, i: int, socket: Path | None = None
) -> Any:
    """One Mount from a new pod (name and UID) of the env's service account; its response."""
    from provider.mountcli import mount_once
    from tests.support.running import pod_attributes

    attrs = pod_attributes(params, pod=f"app-{i}", tokens=env.tokens)
    attrs["csi.storage.k8s.io/pod.uid"] = str(uuid.uuid4())
    return mount_once(
        socket=socket or work / "polysecret.sock",
        attributes=attrs,
        secrets=env.secrets,
        target=work / "target",
        permission="420",
        current_versions={},
        timeout=60,
    )


class PeerFailed(Exception):
    """A peer mount did not succeed: the peer's figure would measure a failure."""


def peer_cpu_ms(backend: str, binary: Path, env: Any, n_objects: int, mounts: int) -> float:
    """CPU ms per mount of the real peer (bench/peers.py), measured as ours.

    Same backend, objects, tokens and new pod per mount; 2 warm-up mounts,
    then ``mounts`` measured. Every mount must return one non-empty file per
    object and no error, else PeerFailed says why.
    """
    import grpc

    from bench.peers import run_peer

    with run_peer(backend, binary, env) as peer:
        # Our own parameter (refreshInterval) stays out: the class is the peer's.
        params = {**env.parameters, **peer.extra_parameters}
        work = peer.socket.parent

        def mount(i: int) -> None:
            try:
                response = cold_mount(env, params, work, i, socket=peer.socket)
            except grpc.RpcError as exc:
                details = " ".join((exc.details() or "").split())  # one line
                raise PeerFailed(f"{exc.code().name}: {details[:300]}") from None
            if response.error.code:
                raise PeerFailed(f"error code {response.error.code}")
            sizes = sorted(len(f.contents) for f in response.files)
            if len(sizes) != n_objects or not sizes or sizes[0] == 0:
                raise PeerFailed(f"{len(sizes)} files for {n_objects} objects (sizes {sizes[:5]})")

        for i in range(2):
            mount(-1 - i)
        cpu0 = cpu_seconds(peer.process.pid)
        for i in range(mounts):
            mount(i)
        return (cpu_seconds(peer.process.pid) - cpu0) / mounts * 1000


def host_reference_ms() -> float:
    """CPU ms of a fixed pure-Python loop, in this process: how fast the host is right now.

    This machine's vCPUs run at a speed that varies by +-20 % from minute to
    minute (other tenants); a row measured while this figure is high was
    measured on a slow host. Compare rows with similar references.
    """
    start = time.process_time()
    total = 0
    for i in range(1_000_000):
        total += i * i % 7
    return (time.process_time() - start) * 1000


def measure(
    backend: str,
    n_objects: int,
    mounts: int,
    go_baseline: Path | None = None,
    peer: Path | None = None,
) -> dict[str, Any]:
    """Our provider's CPU, wall time and RSS per cold mount; then the Go baseline's and peer's CPU.

    ``go_ms`` is NaN without a Go baseline binary, or when it failed (a note
    on stderr says why); ``peer_ms`` NaN without the peer's binary, or when a
    peer mount failed (``peer_failed`` says why).
    """
    from tests.support.running import settings_for

    with backend_env(backend, n_objects) as env:
        work = Path(tempfile.mkdtemp(prefix=f"polysecret-cost-{backend}-"))
        settings = settings_for(work, {backend: env.settings})
        params = {**env.parameters, "refreshInterval": "0"}
        with provider_process(settings, env.environ) as proc:
            idle = rss_mib(proc.pid)

            def mount(i: int) -> None:
                cold_mount(env, params, work, i)

            # Warm-up: the SDK import, the first login and TLS handshakes are
            # start-up costs, not per-mount ones.
            for i in range(2):
                mount(-1 - i)
            reference = host_reference_ms()
            cpu0 = cpu_seconds(proc.pid)
            wall0 = time.perf_counter()
            half = idle
            for i in range(mounts):
                mount(i)
                if i == mounts // 2:
                    half = rss_mib(proc.pid)
            wall = (time.perf_counter() - wall0) / mounts
            cpu = (cpu_seconds(proc.pid) - cpu0) / mounts
            after = rss_mib(proc.pid)
        # Right after ours, against the same server and objects (our provider
        # has stopped, so the two do not share the CPU).
        go_ms = float("nan")
        if go_baseline is not None:
            try:
                go_ms = go_baseline_ms(go_baseline, env, n_objects, mounts)
            except (subprocess.SubprocessError, OSError, ValueError, KeyError) as exc:
                stderr = getattr(exc, "stderr", "") or ""
                why = f"{type(exc).__name__}: {stderr.strip()[-300:]}"
                print(f"  Go baseline failed: {why}", file=sys.stderr)
        # Then the real peer, the same way (its own process, our provider stopped).
        peer_ms, peer_failed = float("nan"), ""
        if peer is not None:
            try:
                peer_ms = peer_cpu_ms(backend, peer, env, n_objects, mounts)
            except (PeerFailed, RuntimeError, OSError) as exc:
                peer_failed = str(exc) or type(exc).__name__
        reference = (reference + host_reference_ms()) / 2
        return {
            "peer_ms": peer_ms,
            "peer_failed": peer_failed,
            "reference_ms": reference,
            "cpu_ms": cpu * 1000,
            "go_ms": go_ms,
            "wall_ms": wall * 1000,
            "idle": idle,
            # Half-way and at the end: equal when the growth has stopped
            # (every cache and pool is bounded), not still climbing.
            "half": half,
            "after": after,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--mounts", type=int, default=40, help="measured mounts per row")
    parser.add_argument("--backends", default="aws,vault,azure")
    parser.add_argument("--sizes", default="1,10,50")
    parser.add_argument("--event-loop", choices=["auto", "uvloop", "asyncio"],
                        default=os.environ.get("POLYSECRET_EVENT_LOOP", "auto"),
                        help="our server's event loop (provider/eventloop.py)")
    parser.add_argument("--moto-closes", action="store_true",
                        help="moto closes the connection after every answer (werkzeug)")
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child)
    global MOTO_KEEP_ALIVE  # noqa: PLW0603 - a run-wide switch, set once here
    MOTO_KEEP_ALIVE = not args.moto_closes
    # Read by the server we start (serve's flag default) and by the harness's
    # in-process provider in the measured child: both pick this loop.
    os.environ["POLYSECRET_EVENT_LOOP"] = args.event_loop
    from provider import eventloop

    loop = eventloop.factory(args.event_loop)()
    print(
        f"event loop: {args.event_loop} -> {eventloop.name(loop)}; moto: "
        + ("closes after every answer" if args.moto_closes else "keeps connections open")
    )
    loop.close()
    sizes = [int(s) for s in args.sizes.split(",")]
    go_baseline, why_not = build_go_baseline()
    from bench.peers import PEERS, build_peer

    backends = args.backends.split(",")
    peers: dict[str, Path | None] = {}
    for backend in backends:
        peers[backend], why_no_peer = build_peer(backend)
        label = PEERS[backend].label if backend in PEERS else backend
        print(f"peer {label}: " + (f"not run ({why_no_peer})" if why_no_peer else "built"))
    serve = serve_rss()
    print(
        "polysecret serve RSS, idle / after probes and a refused mount: "
        + ", ".join(f"{idle:.1f} / {warm:.1f}" for idle, warm in serve)
        + " MiB (peers idle 19-33 MiB)"
    )
    print("cold mounts (every object read), new pod per mount, one service account")
    print(
        "Go SDK: CPU ms/mount of the peer's SDK doing the same requests here and now "
        "(a lower bound of the peer's)"
        + (f"; {why_not}" if why_not else "")
    )
    print(
        "peer now: CPU ms/mount of the real peer process, same requests, right after ours; "
        "peer CPU: performance.md's figure (another time)"
    )
    print(
        f"{'backend':8} {'objects':>7} {'CPU ms/mount':>13} {'peer now':>8} "
        f"{'ours/peer now':>13} {'peer CPU':>9} "
        f"{'ours/peer':>9} {'Go SDK':>7} {'ours/Go SDK':>11} {'wall ms':>8} {'RSS idle':>9} "
        f"{'half / after':>14} {'growth':>7} "
        f"{'host ref':>8}"
    )
    for backend in backends:
        for n in sizes:
            # As many mounts for every size: /proc counts CPU in 10 ms ticks, so
            # fewer 50-object mounts would blur the figure.
            mounts = args.mounts
            try:
                row = measure(backend, n, mounts, go_baseline, peers[backend])
            except Exception as exc:  # one missing server must not hide the other rows
                print(f"{backend:8} {n:7d} failed: {type(exc).__name__}: {exc}")
                continue
            peer = PEER_CPU_MS[backend].get(n)
            ratio = f"x{row['cpu_ms'] / peer:.2f}" if peer else "-"
            go_ms = row["go_ms"]
            go = "-" if math.isnan(go_ms) else f"{go_ms:.2f}"
            go_ratio = "-" if math.isnan(go_ms) or go_ms <= 0 else f"x{row['cpu_ms'] / go_ms:.2f}"
            now_ms = row["peer_ms"]
            now = "failed" if row["peer_failed"] else "-" if math.isnan(now_ms) else f"{now_ms:.2f}"
            now_ratio = (
                "-" if math.isnan(now_ms) or now_ms <= 0 else f"x{row['cpu_ms'] / now_ms:.2f}"
            )
            print(
                f"{backend:8} {n:7d} {row['cpu_ms']:13.2f} {now:>8} {now_ratio:>13} "
                f"{peer or float('nan'):9.1f} "
                f"{ratio:>9} {go:>7} {go_ratio:>11} {row['wall_ms']:8.2f} {row['idle']:8.1f}M "
                f"{row['half']:6.1f} /{row['after']:6.1f}M {row['after'] - row['idle']:+6.1f}M "
                f"{row['reference_ms']:7.0f}ms"
            )
            if row["peer_failed"]:
                print(f"{'':8} peer failed: {row['peer_failed']}")
        print(f"{'':8} peers' RSS idle / after ~600 mounts: {PEER_RSS_MIB[backend]} MiB")
    print(GOAL)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
