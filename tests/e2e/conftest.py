"""One cluster, three backends and the chart-installed provider for the whole e2e session.

Bring-up is ~10 s with the binaries cached (scripts/install-e2e.sh builds them
once, 8-12 min cold). The cluster is torn down by tests/e2e/hostclean.py when
the session ends, also when a test fails, on SIGTERM/SIGHUP and at interpreter
exit; ``python -m tests.e2e.hostclean`` does the same after a killed run.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from tests.conformance import backends as scenarios
from tests.conformance.conftest import DenyProxy, _deny_proxy
from tests.e2e import daemonset_pod, hostclean
from tests.e2e.backends import azure_world, seed_vault_jwt
from tests.e2e.chart import NAMESPACE, Provider, install
from tests.e2e.cluster import ISSUER, Cluster, running_cluster
from tests.support.azure_standin import AzureWorld
from tests.support.moto import REGION, moto_server, seed_client
from tests.support.openbao import OpenBao, TokenSigner, openbao_server

APP_SA = scenarios.SERVICE_ACCOUNT  # "app", in namespace default
# Short, so rotation reaches a pod within seconds (users keep the 2 min default).
ROTATION_POLL = "5s"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The first test's setup may build the cluster's binaries (8-12 min cold)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.timeout(1500))


# The session's cluster, for the failure report below.
_RUNNING: list[Cluster] = []
LOG_TAIL_LINES = 40


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test's report carries the tails of the component logs (gone after teardown)."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed or not _RUNNING:
        return
    root = _RUNNING[0].root
    # The provider's pods log where kubelet puts container logs.
    for path in [*sorted((root / "logs").glob("*.log")), *provider_pod_logs(_RUNNING[0])]:
        if path.stem in ("etcd", "containerd", "kube-apiserver"):
            continue
        # A pod's log is <namespace>_<pod>_<uid>/<container>/<restart>.log.
        name = path.stem if path.parent.name == "logs" else path.parents[1].name.split("_")[1]
        tail = path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        report.sections.append((f"log {name}", "\n".join(tail)))


def provider_pod_logs(cluster: Cluster) -> list[Path]:
    """The running provider pods' container logs (a stopped one's is under logs/)."""
    return sorted(cluster.pod_logs.glob(f"{NAMESPACE}_*/{daemonset_pod.CONTAINER}/*.log"))


def _clean_on_signals(root: Path) -> None:
    """A killed CI job (SIGTERM, SIGHUP) or a normal exit still cleans the host."""
    atexit.register(hostclean.clean, root)

    def handler(signum: int, _frame: FrameType | None) -> None:
        hostclean.clean(root)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.fail("tests/e2e runs kubelet and containerd: it needs root (make e2e as root)")
    with running_cluster(rotation_poll=ROTATION_POLL) as running:
        _clean_on_signals(running.root)
        _RUNNING.append(running)
        running.apply({"apiVersion": "v1", "kind": "ServiceAccount",
                       "metadata": {"name": APP_SA, "namespace": "default"},
                       "automountServiceAccountToken": False})  # fmt: skip
        yield running
        _RUNNING.clear()


@dataclass
class Aws:
    url: str  # the deny proxy in front of moto, what the provider calls
    proxy: DenyProxy
    sm: Any
    ssm: Any


@dataclass
class World:
    cluster: Cluster
    provider: Provider
    values: dict[str, Any]  # the chart's backend values it was installed with
    aws: Aws
    bao: OpenBao
    azure: AzureWorld
    # Every secret value seeded (and rotated) so far: never in the provider's logs.
    known_secrets: list[list[bytes]] = field(default_factory=list)

    def scenario(self, backend: str) -> scenarios.Scenario:
        """A fresh example SecretProviderClass and its seeded objects (tests/conformance)."""
        if backend == "aws":
            made = scenarios.aws_scenario(self.aws.sm, self.aws.ssm, self.aws.proxy.deny)
        elif backend == "vault":
            # The signer only makes the conformance suite's own tokens; kubelet's are used here.
            made = scenarios.vault_scenario(self.bao, TokenSigner())
        else:
            made = scenarios.azure_scenario(self.azure, set())
        self.known_secrets.append(made.known_secrets)  # the list rotate() appends to
        return made

    def assert_logs_hold_no_secret(self) -> None:
        logs = [*sorted((self.cluster.root / "logs").glob("provider-*.log")),
                *provider_pod_logs(self.cluster)]
        assert logs
        for path in logs:
            text = path.read_bytes()
            # A kubelet-issued token is a JWT: "eyJ" starts its base64url JSON header.
            assert b"eyJ" not in text, f"a token in {path.name}"
            for value in (v for values in self.known_secrets for v in values if len(v) >= 6):
                assert value not in text, f"a secret value in {path.name}"


@pytest.fixture(scope="session")
def world(cluster: Cluster) -> Iterator[World]:
    public_key = cluster.sa_public_key.read_bytes()
    with contextlib.ExitStack() as stack:
        moto_url = stack.enter_context(moto_server())
        server, proxy = _deny_proxy(moto_url)
        stack.callback(server.server_close)
        stack.callback(server.shutdown)
        aws = Aws(proxy.url, proxy, seed_client(moto_url, "secretsmanager"),
                  seed_client(moto_url, "ssm"))  # fmt: skip
        bao = stack.enter_context(openbao_server(audit=True))
        seed_vault_jwt(bao, ISSUER, public_key, [APP_SA])
        azure = stack.enter_context(
            azure_world(ISSUER, public_key, f"system:serviceaccount:default:{APP_SA}")
        )
        values = {
            "aws": {"region": REGION, "endpointUrl": proxy.url},
            "azure": {
                "authorityHost": azure.tokens.url,
                "keyvaultEndpoint": azure.vault.url + "/",
                "caFile": str(azure.pki.ca_file),
                "apiVersion": "7.6",
                # The challenge names vault.azure.net while the vault is 127.0.0.1.
                "skipChallengeResourceCheck": True,
            },
        }  # fmt: skip
        world = World(cluster, install(cluster, values), values, aws, bao, azure)
        yield world
        world.assert_logs_hold_no_secret()
