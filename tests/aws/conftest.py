"""Fixtures for the AWS tests: a real moto server, the real provider, and small fakes.

moto (Secrets Manager, SSM, STS) is a real HTTP server; the provider runs
in-process and is reached over its real Unix socket by a real gRPC client.
Only what cannot run on this machine is faked, each by a tiny local HTTP server:
the EKS Pod Identity agent, the Kubernetes API, and a proxy that makes one
region fail (moto serves every region on one endpoint).
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from provider.backends.aws import AwsSettings
from tests.support.moto import ACCOUNT, REGION, ROLE_ARN, moto_server, reset, seed_client
from tests.support.running import RunningProvider, pod_attributes, settings_for
from tests.support.tokens import pod_token

# Tokens as a pod would carry them: JWT-shaped, never looked at by moto.
STS_TOKEN = pod_token("sts.amazonaws.com")
POD_IDENTITY_TOKEN = pod_token("pods.eks.amazonaws.com")
NODE_NAME = "node-1"
NODE_REGION = "us-west-2"


def _serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    host, port = server.server_address[:2]
    return server, f"http://{host}:{port}"


def _stop(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()


class _QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None

    def reply(
        self, status: int, body: dict[str, Any] | bytes, headers: dict[str, str] | None = None
    ) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        for k, v in (headers or {"Content-Type": "application/json"}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


# -- moto ------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(autouse=True)
def _fresh_moto(moto_url: str) -> None:
    """Every test starts from an empty moto (secrets, parameters, STS sessions)."""
    reset(moto_url)


@pytest.fixture
def sm(moto_url: str) -> Any:
    return seed_client(moto_url, "secretsmanager")


@pytest.fixture
def ssm(moto_url: str) -> Any:
    return seed_client(moto_url, "ssm")


# -- the fault proxy ---------------------------------------------------------

_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")


@dataclass
class RegionProxy:
    """A pass-through proxy in front of moto that can fail chosen regions.

    moto answers every region on one endpoint, so "us-east-1 is down while
    us-west-2 works" cannot be had from moto itself. The proxy reads the
    region from each request's SigV4 credential scope and answers 503 for the
    regions in ``failing`` and AccessDeniedException (as AWS does when a policy
    denies the caller) for those in ``deny``; everything else (including the
    unsigned STS call) goes to moto untouched. It also counts operations
    (X-Amz-Target) per region.
    """

    url: str = ""
    failing: set[str] = field(default_factory=set)
    deny: set[str] = field(default_factory=set)
    # Operations (X-Amz-Target) denied in every region: a role without that permission.
    deny_operations: set[str] = field(default_factory=set)
    delay: float = 0.0
    calls: list[tuple[str, str]] = field(default_factory=list)
    # The form of each query-protocol (STS) request: what the provider asked for.
    forms: list[dict[str, list[str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, operation: str, region: str | None = None) -> int:
        with self.lock:
            return sum(1 for op, r in self.calls if op == operation and region in (None, r))


@pytest.fixture
def region_proxy(moto_url: str) -> Iterator[RegionProxy]:
    state = RegionProxy()
    upstream = urllib.parse.urlsplit(moto_url)

    class Handler(_QuietHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            scope = _SCOPE.search(self.headers.get("Authorization", ""))
            region = scope.group(1) if scope else ""
            target = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
            query = not target  # STS speaks the query protocol: Action= in the body, XML back
            form = urllib.parse.parse_qs(body.decode("utf-8", "replace")) if query else {}
            if query:
                target = form.get("Action", [""])[0]
            with state.lock:
                state.calls.append((target, region))
                if query:
                    state.forms.append(form)
            if region in state.failing:
                if state.delay:
                    threading.Event().wait(state.delay)
                self.reply(
                    503,
                    {
                        "__type": "ServiceUnavailableException",
                        "message": f"region {region} is down (test proxy)",
                    },
                )
                return
            if query and target in state.deny_operations:
                self.reply(
                    403,
                    b"<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
                    b"<Message>User: arn:aws:sts::111122223333:assumed-role/app-role/x is not "
                    b"authorized to perform: sts:AssumeRole</Message></Error>"
                    b"<RequestId>1</RequestId></ErrorResponse>",
                    {"Content-Type": "text/xml"},
                )
                return
            if region in state.deny or target in state.deny_operations:
                self.reply(
                    400,
                    {
                        "__type": "AccessDeniedException",
                        "Message": "User: arn:aws:sts::111122223333:assumed-role/app-role/x "
                        f"is not authorized to perform: {target}",
                    },
                )
                return
            conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request("POST", self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                passed = {
                    k: v
                    for k, v in answer.getheaders()
                    if k.lower() not in ("content-length", "transfer-encoding", "connection")
                }
                self.reply(answer.status, data, passed)
            finally:
                conn.close()

    server, state.url = _serve(Handler)
    try:
        yield state
    finally:
        _stop(server)


# -- fake EKS Pod Identity agent --------------------------------------------


@dataclass
class PodIdentityAgent:
    url: str = ""
    expected_token: str = POD_IDENTITY_TOKEN
    # Answer this HTTP status instead of credentials (e.g. 403: no association).
    status: int = 200
    requests: int = 0


@pytest.fixture
def pod_identity_agent(moto_url: str) -> Iterator[PodIdentityAgent]:
    """Stands in for the EKS Pod Identity agent, which runs on EKS nodes only.

    Like the real agent, it checks the pod's token in the Authorization header
    and answers AccessKeyId/SecretAccessKey/Token/Expiration; the credentials
    are a real moto AssumeRole, so they act in the role's account.
    """
    state = PodIdentityAgent()
    sts = seed_client(moto_url, "sts")

    class Handler(_QuietHandler):
        def do_GET(self) -> None:
            state.requests += 1
            if self.path != "/v1/credentials":
                self.reply(404, {"message": "not found"})
                return
            if self.headers.get("Authorization") != state.expected_token:
                self.reply(403, {"message": "invalid token"})
                return
            if state.status != 200:
                self.reply(state.status, {"message": "refused"})
                return
            creds = sts.assume_role(RoleArn=ROLE_ARN, RoleSessionName="pod-identity")["Credentials"]
            self.reply(
                200,
                {
                    "AccessKeyId": creds["AccessKeyId"],
                    "SecretAccessKey": creds["SecretAccessKey"],
                    "Token": creds["SessionToken"],
                    "AccountId": ACCOUNT,
                    "Expiration": creds["Expiration"]
                    .astimezone(dt.UTC)
                    .strftime("%Y-%m-%dT%H:%M:%SZ"),
                },
            )

    server, url = _serve(Handler)
    state.url = url + "/v1/credentials"
    try:
        yield state
    finally:
        _stop(server)


# -- fake Kubernetes API ----------------------------------------------------


@dataclass
class FakeKube:
    url: str = ""
    # (namespace, name) -> annotations
    service_accounts: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    # node name -> labels
    nodes: dict[str, dict[str, str]] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)


@pytest.fixture
def fake_kube() -> Iterator[FakeKube]:
    """The two Kubernetes API reads the provider makes; no API server can run here."""
    state = FakeKube(
        service_accounts={("default", "app"): {"eks.amazonaws.com/role-arn": ROLE_ARN}},
        nodes={NODE_NAME: {"topology.kubernetes.io/region": NODE_REGION}},
    )
    sa_path = re.compile(r"^/api/v1/namespaces/([^/]+)/serviceaccounts/([^/]+)$")
    node_path = re.compile(r"^/api/v1/nodes/([^/]+)$")

    class Handler(_QuietHandler):
        def do_GET(self) -> None:
            state.paths.append(self.path)
            if m := sa_path.match(self.path):
                annotations = state.service_accounts.get((m.group(1), m.group(2)))
                if annotations is not None:
                    self.reply(
                        200,
                        {
                            "kind": "ServiceAccount",
                            "metadata": {
                                "name": m.group(2),
                                "namespace": m.group(1),
                                "annotations": annotations,
                            },
                        },
                    )
                    return
            elif m := node_path.match(self.path):
                labels = state.nodes.get(m.group(1))
                if labels is not None:
                    self.reply(
                        200, {"kind": "Node", "metadata": {"name": m.group(1), "labels": labels}}
                    )
                    return
            self.reply(404, {"kind": "Status", "reason": "NotFound"})

    server, state.url = _serve(Handler)
    try:
        yield state
    finally:
        _stop(server)


# -- the provider -----------------------------------------------------------

ProviderFactory = Callable[..., RunningProvider]


@pytest.fixture
def make_provider(tmp_path: Path, moto_url: str) -> Iterator[ProviderFactory]:
    """Start a provider with custom AwsSettings / ServerSettings; all are stopped after."""
    started: list[RunningProvider] = []

    def make(aws: AwsSettings | None = None, **server: Any) -> RunningProvider:
        settings = settings_for(
            tmp_path / f"sockets{len(started)}",
            {"aws": aws or AwsSettings(region=REGION, endpoint_url=moto_url)},
            **server,
        )
        running = RunningProvider(settings)
        started.append(running)
        return running.__enter__()

    try:
        yield make
    finally:
        for running in started:
            running.stop()


@pytest.fixture
def provider(make_provider: ProviderFactory) -> RunningProvider:
    return make_provider()


def attrs(
    objects: str,
    *,
    tokens: dict[str, str] | None = None,
    role: bool = True,
    **params: str,
) -> dict[str, str]:
    """Driver v1.6.0 attributes for an AWS SecretProviderClass mounted by default/app."""
    base = {"objects": objects, **params}
    if role:
        base.setdefault("roleArn", ROLE_ARN)
    return pod_attributes(
        base, tokens={"sts.amazonaws.com": STS_TOKEN} if tokens is None else tokens
    )
