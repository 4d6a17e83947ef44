"""A tiny Kubernetes API stand-in for running the Go reference providers in bench/cost.py.

No cluster runs for the benchmark, yet the real peers call the Kubernetes API on
every mount: vault-csi-provider GETs (and, the first time, POSTs) its HMAC key
Secret; the AWS provider GETs the pod's ServiceAccount for its
``eks.amazonaws.com/role-arn`` annotation. This server answers exactly those
calls, as the API server does (JSON objects, which client-go accepts beside
protobuf; a ``Status`` with reason ``NotFound``/``AlreadyExists`` for the
errors client-go tells apart; a POSTed Secret read from client-go's protobuf
or from JSON), and
counts what it was asked; anything else gets 404 and is recorded in
``unexpected``, so a test sees a peer asking for more than we serve.

Both peers build their client with client-go's ``rest.InClusterConfig()``:
``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT``, a bearer token
and a CA read from the fixed directory
``/var/run/secrets/kubernetes.io/serviceaccount`` (plus ``namespace``, read by
the Vault peer). ``peer_argv`` runs a peer in a private mount namespace
(``unshare``) where that directory exists, so nothing is written outside a
temporary directory.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.background import serving

NAMESPACE = "csi"  # the peer's own namespace (where the Vault peer keeps its HMAC Secret)
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
ROLE_ARN_ANNOTATION = "eks.amazonaws.com/role-arn"
PROTOBUF = "application/vnd.kubernetes.protobuf"
PROTOBUF_MAGIC = b"k8s\x00"

_SECRET = re.compile(r"^/api/v1/namespaces/([^/]+)/secrets/([^/?]+)$")
_SECRETS = re.compile(r"^/api/v1/namespaces/([^/]+)/secrets$")
_ACCOUNT = re.compile(r"^/api/v1/namespaces/([^/]+)/serviceaccounts/([^/?]+)$")


@dataclass
class KubeStandin:
    """What the stand-in holds and saw; filled by the server's threads."""

    port: int
    directory: Path  # holds run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace}
    token: str
    # (namespace, name) -> Secret object (as POSTed); (namespace, name) -> role ARN
    secrets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    role_arns: dict[tuple[str, str], str] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)  # "GET /api/v1/..." in order
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def environ(self) -> dict[str, str]:
        """What the kubelet sets in every pod for the in-cluster client."""
        return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(self.port)}

    def peer_argv(self, argv: list[str]) -> list[str]:
        """``argv`` run where SA_DIR holds our token, CA and namespace (a private /run).

        ``unshare --mount --map-root-user`` gives the peer its own mount
        namespace (as an unprivileged user too, where user namespaces are
        allowed); /run (which /var/run points to) is replaced there by our
        directory. The peer needs nothing else from /run: it reaches every
        server by IP address. ``exec`` keeps the peer's PID the one Popen sees
        (bench/cost.py reads its CPU from /proc).
        """
        unshare = shutil.which("unshare")
        if unshare is None:
            raise RuntimeError("`unshare` (util-linux) is not installed")
        script = 'mount --bind "$0" /run && exec "$@"'
        return [unshare, "--mount", "--map-root-user", "sh", "-c", script,
                str(self.directory / "run"), *argv]  # fmt: skip


def _fields(data: bytes) -> list[tuple[int, Any]]:
    """A protobuf message's (field number, value) pairs, decoded by the protobuf library.

    Parsed into an empty message, every field is an unknown one: enough to
    read the few fields we need without the Kubernetes .proto files.
    """
    from google.protobuf import empty_pb2
    from google.protobuf.unknown_fields import UnknownFieldSet

    message = empty_pb2.Empty()
    message.ParseFromString(data)
    found = UnknownFieldSet(message)
    return [(found[i].field_number, found[i].data) for i in range(len(found))]


def secret_from_protobuf(body: bytes) -> dict[str, Any]:
    """A POSTed Secret (client-go sends built-in types as protobuf) as its JSON form.

    The body is the ``k8s\\0`` magic, then a runtime.Unknown whose field 2
    (raw) is the v1.Secret: 1 metadata (ObjectMeta: 1 name), 2 data (map
    entries: 1 key, 2 value), 5 immutable.
    """
    if not body.startswith(PROTOBUF_MAGIC):
        raise ValueError("no protobuf envelope")
    raw = next(v for n, v in _fields(body[len(PROTOBUF_MAGIC):]) if n == 2)
    secret: dict[str, Any] = {"kind": "Secret", "apiVersion": "v1", "metadata": {}, "data": {}}
    for number, value in _fields(raw):
        if number == 1:
            for n, v in _fields(value):
                if n == 1:
                    secret["metadata"]["name"] = v.decode()
        elif number == 2:
            entry = dict(_fields(value))
            secret["data"][entry[1].decode()] = base64.b64encode(entry.get(2, b"")).decode()
        elif number == 5:
            secret["immutable"] = bool(value)
    return secret


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}  # fmt: skip


def _handler(state: KubeStandin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: Any) -> None:  # the bench's output stays figures only
            pass

        def _send(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {state.token}":
                return True
            self._send(401, _status(401, "Unauthorized", "Unauthorized"))
            return False

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            with state.lock:
                state.requests.append(f"GET {path}")
            if not self._authorized():
                return
            if m := _SECRET.match(path):
                with state.lock:
                    secret = state.secrets.get((m[1], m[2]))
                if secret is None:
                    self._send(404, _status(404, "NotFound", f'secrets "{m[2]}" not found'))
                else:
                    self._send(200, secret)
                return
            if m := _ACCOUNT.match(path):
                with state.lock:
                    role = state.role_arns.get((m[1], m[2]))
                if role is None:
                    self._send(404, _status(404, "NotFound", f'serviceaccounts "{m[2]}" not found'))
                    return
                self._send(200, {
                    "kind": "ServiceAccount", "apiVersion": "v1",
                    "metadata": {"name": m[2], "namespace": m[1],
                                 "annotations": {ROLE_ARN_ANNOTATION: role}},
                })  # fmt: skip
                return
            self._unexpected(path)

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with state.lock:
                state.requests.append(f"POST {path}")
            if not self._authorized():
                return
            m = _SECRETS.match(path)
            if m is None:
                self._unexpected(path)
                return
            try:
                if self.headers.get("Content-Type") == PROTOBUF:
                    secret = secret_from_protobuf(body)
                else:
                    secret = json.loads(body)
                    for value in (secret.get("data") or {}).values():
                        base64.b64decode(value, validate=True)  # base64, as in the API
                name = secret["metadata"]["name"]
            except (ValueError, KeyError, TypeError):
                self._send(400, _status(400, "BadRequest", "not a Secret with a name"))
                return
            secret["metadata"]["namespace"] = m[1]
            with state.lock:
                if (m[1], name) in state.secrets:
                    exists = True
                else:
                    exists = False
                    state.secrets[(m[1], name)] = secret
            if exists:
                self._send(409, _status(409, "AlreadyExists", f'secrets "{name}" already exists'))
            else:
                self._send(201, secret)

        def _unexpected(self, path: str) -> None:
            with state.lock:
                state.unexpected.append(f"{self.command} {path}")
            self._send(404, _status(404, "NotFound", "not served by the stand-in"))

    return Handler


@contextlib.contextmanager
def kube_standin(workdir: Path) -> Iterator[KubeStandin]:
    """The API over TLS on 127.0.0.1 (a certificate for that IP from a fresh CA)."""
    from cryptography.hazmat.primitives import serialization

    from tests.support.openbao import _cert, _key, _write_key
    from tests.support.tokens import pod_token

    sa_dir = workdir / "run" / "secrets" / "kubernetes.io" / "serviceaccount"
    sa_dir.mkdir(parents=True, exist_ok=True)
    ca_key, server_key = _key(), _key()
    ca = _cert("kube stand-in CA", ca_key, None, ca=True)
    server = _cert("kubernetes", server_key, (ca, ca_key), ca=False, ips=("127.0.0.1",))
    (sa_dir / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (workdir / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    _write_key(server_key, workdir / "server-key.pem")
    token = pod_token("https://kubernetes.default.svc", service_account="csi-provider")
    (sa_dir / "token").write_text(token)
    (sa_dir / "namespace").write_text(NAMESPACE)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    state = KubeStandin(port=int(httpd.server_address[1]), directory=workdir, token=token)
    httpd.RequestHandlerClass = _handler(state)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(workdir / "server.pem", workdir / "server-key.pem")
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    with serving(httpd):
        yield state


def namespaces_work() -> str:
    """"" when ``peer_argv`` can run here, else why not (no unshare, no user namespaces)."""
    if shutil.which("unshare") is None:
        return "`unshare` (util-linux) is not installed"
    probe = subprocess.run(
        ["unshare", "--mount", "--map-root-user", "true"],
        check=False, capture_output=True, text=True,
    )
    if probe.returncode != 0:
        return f"no private mount namespace here: {probe.stderr.strip()[-200:]}"
    return ""
