"""The real Go reference providers, built from source and run beside ours in bench/cost.py.

The host's speed drifts by up to ~1.7x between half hours, so comparing our
CPU per mount with the peers' figures measured at another time
(../shared/spec/performance.md) says little; this runs the peers themselves,
right after our row, against the same backend and objects with the same Mount
requests (bench/README.md tells how).

Building: ``go install <module>@<version>`` into $POLYSECRET_CACHE/peers/
through the Go module proxy. Where the proxy does not serve a peer's module
(it answers 403 for both here), a source tree of the tagged release under
$POLYSECRET_CACHE/peers/src/<name>/ is built with ``go build`` instead (its
dependencies still come through the proxy). Without ``go``, or when neither
works, the peer's column reads "-" and a note says why: never a failed run.

Running: each peer as its own process (so /proc gives its CPU), listening on
its Unix socket, with its Kubernetes API calls answered by
tests/support/kube_standin.py (no cluster runs here) and, for AWS, its STS
calls led to moto through tests/support/tls_tunnel.py.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.background import stop


@dataclass(frozen=True)
class Peer:
    backend: str
    binary: str
    module: str  # the Go module
    version: str  # what `go install` is given (a tag, or the release's commit)
    label: str
    main: str = ""  # the main package's directory in the module ("" is its root)


PEERS = {
    "vault": Peer("vault", "vault-csi-provider", "github.com/hashicorp/vault-csi-provider",
                  "v1.7.4", "vault-csi-provider 1.7.4"),
    # Its tags (secrets-store-csi-driver-provider-aws-3.1.1) are no Go versions: the commit.
    "aws": Peer("aws", "secrets-store-csi-driver-provider-aws",
                "github.com/aws/secrets-store-csi-driver-provider-aws",
                "5f47771b11645e19c11057dc690d3012f7a2345d",
                "secrets-store-csi-driver-provider-aws 3.1.1"),
    "azure": Peer("azure", "secrets-store-csi-driver-provider-azure",
                  "github.com/Azure/secrets-store-csi-driver-provider-azure", "v1.8.2",
                  "secrets-store-csi-driver-provider-azure 1.8.2", main="cmd"),
}  # fmt: skip


def peers_dir() -> Path:
    cache = Path(os.environ.get("POLYSECRET_CACHE", Path.home() / ".cache" / "polysecret"))
    return cache / "peers"


def build_peer(backend: str) -> tuple[Path | None, str]:
    """The peer's binary (built once, then reused), or (None, why not)."""
    peer = PEERS.get(backend)
    if peer is None:
        return None, f"no {backend} peer run here"
    go = shutil.which("go")
    if go is None:
        return None, "`go` is not on PATH"
    from tests.support.kube_standin import namespaces_work

    if why := namespaces_work():
        return None, why
    out = peers_dir() / peer.version
    binary = out / peer.binary
    if binary.is_file():
        return binary, ""
    out.mkdir(parents=True, exist_ok=True)
    why = ""
    try:
        subprocess.run(
            [go, "install", f"{peer.module}{'/' if peer.main else ''}{peer.main}@{peer.version}"],
            env={**os.environ, "GOBIN": str(out)}, cwd=out,
            check=True, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        if peer.main:  # go install names it after its directory
            (out / peer.main.rsplit("/", 1)[-1]).rename(binary)
        return binary, ""
    except subprocess.CalledProcessError as exc:
        why = f"go install failed: {exc.stderr.strip()[-200:]}"
    except subprocess.TimeoutExpired:
        why = "go install took over 900 s"
    except OSError as exc:
        why = f"go install: {exc}"
    src = peers_dir() / "src" / peer.binary
    if not (src / "go.mod").is_file():
        return None, f"{why}; no source tree at {src} either"
    try:
        subprocess.run(
            [go, "build", "-o", str(binary), f"./{peer.main}"],
            cwd=src, check=True, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    except subprocess.CalledProcessError as exc:
        return None, f"go build in {src} failed: {exc.stderr.strip()[-300:]}"
    except subprocess.TimeoutExpired:
        return None, f"go build in {src} took over 900 s"
    except OSError as exc:
        return None, f"go build in {src}: {exc}"
    return binary, ""


@dataclass
class RunningPeer:
    process: subprocess.Popen[bytes]
    socket: Path
    # what the Mount's attributes need beyond ours, in the peer's dialect
    extra_parameters: dict[str, str]
    log: Path
    kube: Any  # the KubeStandin it calls (its requests, for the tests)
    tunnel: Any = None  # the Tunnel its cloud host names go through (AWS, Azure)


def _wait_for(socket: Path, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while not socket.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-400:] if log.exists() else ""
            raise RuntimeError(f"the peer did not start: {tail.strip()}")
        time.sleep(0.02)


@contextlib.contextmanager
def run_peer(backend: str, binary: Path, env: Any) -> Iterator[RunningPeer]:
    """The peer serving ``env``'s backend (a tests.support BenchEnv) on a fresh socket."""
    from tests.support.kube_standin import kube_standin

    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"peer-{backend}-")))
        kube = stack.enter_context(kube_standin(work / "kube"))
        log = work / "peer.log"
        environ = {"PATH": os.environ.get("PATH", ""), "HOME": str(work), **kube.environ}
        extra: dict[str, str] = {}
        tunnel = None
        if backend == "vault":
            socket = work / "vault.sock"
            # The vault address comes with each Mount (vaultAddress), as ours.
            argv = [str(binary), f"-endpoint={socket}", "-health-addr=127.0.0.1:0"]
        elif backend == "aws":
            from tests.support.moto import ROLE_ARN
            from tests.support.tls_tunnel import Upstream, tls_tunnel

            endpoint = env.go_baseline_args["-endpoint"]
            region = env.go_baseline_args["-region"]
            host, port = endpoint.removeprefix("http://").rsplit(":", 1)
            routes = {f"sts.{region}.amazonaws.com": Upstream(host, int(port))}
            tunnel = stack.enter_context(tls_tunnel(work / "tunnel", routes))
            kube.role_arns[("default", "app")] = ROLE_ARN
            socket = work / "aws.sock"
            # --driver-writes-secrets: the files come back in the response (as
            # from ours), for the driver to write.
            argv = [str(binary), f"--provider-volume={work}", "--driver-writes-secrets=true"]
            environ |= {
                # Secrets Manager and SSM clients come from LoadDefaultConfig: the
                # endpoint setting reaches them; STS goes through the tunnel.
                "AWS_ENDPOINT_URL": endpoint,
                "HTTPS_PROXY": tunnel.url,
                "SSL_CERT_FILE": str(tunnel.ca_file),
                "AWS_EC2_METADATA_DISABLED": "true",
            }
            # Ours takes the region from its flags; the peer from the class (or the node).
            extra = {"region": region}
        elif backend == "azure":
            from tests.support.ports import free_port
            from tests.support.tls_tunnel import Upstream, tls_tunnel

            ca_file = Path(env.go_baseline_args["-ca-file"])
            vault_port = int(env.go_baseline_args["-vault-url"].rstrip("/").rsplit(":", 1)[1])
            ad_port = int(env.go_baseline_args["-authority"].rstrip("/").rsplit(":", 1)[1])
            # The peer's default cloud (AzurePublicCloud), as deployed: Key Vault at
            # <vault>.vault.azure.net, Azure AD at login.microsoftonline.com (a host
            # MSAL trusts: no instance discovery), both led through the tunnel to
            # the stand-ins, which answer under those names.
            routes = {
                f"{env.parameters['keyvaultName']}.vault.azure.net": Upstream(
                    "localhost", vault_port, ca_file
                ),
                "login.microsoftonline.com": Upstream("localhost", ad_port, ca_file),
            }
            tunnel = stack.enter_context(tls_tunnel(work / "tunnel", routes))
            socket = work / "azure.sock"
            argv = [str(binary), f"-endpoint=unix://{socket}",
                    f"-healthz-port={free_port()}", f"-prometheus-port={free_port()}"]  # fmt: skip
            environ |= {"HTTPS_PROXY": tunnel.url, "SSL_CERT_FILE": str(tunnel.ca_file)}
        else:
            raise ValueError(f"no {backend} peer run here")
        with open(log, "wb") as out:
            process = subprocess.Popen(
                kube.peer_argv(argv), env=environ, stdout=out, stderr=subprocess.STDOUT, cwd=work
            )
        try:
            _wait_for(socket, process, log)
            yield RunningPeer(process, socket, extra, log, kube, tunnel)
        finally:
            stop(process, 30)
