"""A real HTTPS Key Vault and Azure AD for the Azure tests, on loopback.

Why not lowkey-vault: its runnable jar (com.github.nagyesta.lowkey-vault:
lowkey-vault-app) is not served by the Maven Central this machine reaches
(every version 404s; the project now publishes the app to GitHub Packages and
Docker Hub only), and no other registry ships it. Until it is reachable these
servers stand in for it, speaking the Key Vault REST API (7.x / 2025+) over real TLS, so the
provider's real SDK clients, credentials, challenge handshake, retries and
TLS trust are all exercised; only the server side is ours.

* ``KeyVaultEmulator``: secrets, RSA/EC keys and certificates (PEM or PKCS#12,
  chain kept as imported) with versions, enable/disable, Key Vault's 401
  bearer challenge, per-client access policy, and fault injection (e.g. one
  429 with Retry-After) to test throttling.
* ``TokenService``: stands in for Azure AD (no Azure AD emulator exists): the
  client-credentials token endpoint checks a workload identity's
  ``client_assertion`` (must equal the pod's projected token for
  ``api://AzureADTokenExchange``) or an SP's ``client_secret``, and answers
  AAD-style errors (401 ``invalid_client`` with an AADSTS code) otherwise; it
  also serves MSAL's OpenID discovery and the IMDS managed-identity endpoint.
* ``TestPki``: a CA and a server certificate for 127.0.0.1/localhost; the
  provider trusts the CA file through ``--azure-ca-file`` (verification on).

Also ``bench_env(n)`` for the benchmark (see tests/support/benchenv.py).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
import socket
import ssl
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from tests.support.background import serving
from tests.support.benchenv import BenchEnv

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
WI_CLIENT = "11111111-2222-3333-4444-555555555555"
SP_CLIENT = "66666666-7777-8888-9999-000000000000"
MI_CLIENT = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
AUDIENCE = "api://AzureADTokenExchange"
PUBLIC_AUTHORITY_HOST = "login.microsoftonline.com"


# -- certificates -------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_cert(
    cn: str,
    key: Any,
    issuer: tuple[x509.Name, Any] | None = None,
    *,
    ca: bool = False,
    san: list[x509.GeneralName] | None = None,
    key_ids: bool = True,
) -> x509.Certificate:
    """A certificate for ``key``, self-signed or signed by ``issuer`` (name, key).

    ``key_ids``: with Subject and Authority Key Identifiers, as real CAs issue
    them (the Azure provider orders a chain by them).
    """
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer or (_name(cn), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    if key_ids:
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        ).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass
class Chain:
    """leaf <- intermediate <- root, and the leaf's key."""

    key: Any
    leaf: x509.Certificate
    intermediate: x509.Certificate
    root: x509.Certificate


def make_chain(cn: str, *, key_ids: bool = True) -> Chain:
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = make_cert(f"{cn} root", root_key, ca=True, key_ids=key_ids)
    mid_key = ec.generate_private_key(ec.SECP256R1())
    mid = make_cert(
        f"{cn} intermediate", mid_key, (root.subject, root_key), ca=True, key_ids=key_ids
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = make_cert(cn, key, (mid.subject, mid_key), key_ids=key_ids)
    return Chain(key, leaf, mid, root)


class TestPki:
    """A CA and a server certificate (SAN localhost, 127.0.0.1) in ``directory``."""

    def __init__(self, directory: Path) -> None:
        import ipaddress

        ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = make_cert("polysecret test CA", ca_key, ca=True)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = make_cert(
            "localhost",
            key,
            (self.ca.subject, ca_key),
            san=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        )
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(self.ca.public_bytes(serialization.Encoding.PEM))
        self.cert_file = directory / "server.pem"
        self.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.key_file = directory / "server-key.pem"
        self.key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


# -- a small threaded HTTPS server -----------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    app: Any = None

    def setup(self) -> None:
        super().setup()
        # Headers and body go out as two writes: without this, Nagle plus the
        # client's delayed ACK adds ~40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        status, headers, body = self.app.handle(self.command, self.path, self.headers, self._body())
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


@contextmanager
def serve_https(app: Any, pki: TestPki) -> Iterator[str]:
    handler = type("Handler", (_Handler,), {"app": app})
    server = _Server(("127.0.0.1", 0), handler)
    server.socket = pki.server_context().wrap_socket(server.socket, server_side=True)
    with serving(server):
        yield f"https://localhost:{server.server_address[1]}"


Response = tuple[int, dict[str, str], Any]


# -- Azure AD (token endpoint, discovery, IMDS) ---------------------------------


def _subject(token: str) -> str | None:
    """The ``sub`` claim of a JWT-shaped token, or None."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    sub = claims.get("sub") if isinstance(claims, dict) else None
    return sub if isinstance(sub, str) else None


@dataclass
class TokenService:
    """Stands in for Azure AD and IMDS; issues opaque access tokens."""

    tenant: str = TENANT
    # client id -> the assertion (pod token) its federated credential accepts
    federated: dict[str, str] = field(default_factory=dict, repr=False)
    # client id -> token subjects its federated credentials accept (as Azure AD
    # matches issuer + subject; signatures are not checked here)
    federated_subjects: dict[str, set[str]] = field(default_factory=dict)
    # client id -> client secret
    service_principals: dict[str, str] = field(default_factory=dict, repr=False)
    # managed identities on the "VM": "" is the system-assigned one
    managed: set[str] = field(default_factory=lambda: {""})
    issued: dict[str, str] = field(default_factory=dict, repr=False)  # token -> client id
    requests: list[str] = field(default_factory=list)
    # The form of each token request, in order (what Azure AD received).
    forms: list[dict[str, str]] = field(default_factory=list, repr=False)
    # Lifetime of the tokens issued (Azure AD's expires_in).
    expires_in: int = 3599
    # Answers for the next token requests instead of a token: (status, headers, body).
    faults: list[tuple[int, dict[str, str], Any]] = field(default_factory=list)
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail_next(
        self, status: int, body: Any, headers: dict[str, str] | None = None, times: int = 1
    ) -> None:
        """The next ``times`` token requests answer ``status`` with ``body`` (JSON or bytes)."""
        with self._lock:
            self.faults.extend([(status, dict(headers or {}), body)] * times)

    def _issue(self, client: str) -> str:
        token = "at-" + secrets.token_urlsafe(24)
        with self._lock:
            self.issued[token] = client
        return token

    def client_of(self, token: str) -> str | None:
        with self._lock:
            return self.issued.get(token)

    def _aad_error(self, status: int, code: str, number: int, text: str) -> Response:
        body = {
            "error": code,
            "error_description": f"AADSTS{number}: {text} Trace ID: {uuid.uuid4()}",
            "error_codes": [number],
        }
        return status, {}, body

    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> Response:
        parsed = urllib.parse.urlsplit(raw_path)
        path = parsed.path
        query = dict(urllib.parse.parse_qsl(parsed.query))
        with self._lock:
            self.requests.append(f"{method} {path}")
        if path == "/metadata/identity/oauth2/token":
            return self._imds(query, headers)
        if path == "/common/discovery/instance":
            # MSAL's instance discovery (the Go peer asks it on every mount), as
            # Azure AD answers it: where the tenant's OpenID configuration is and
            # the authority's aliases.
            authorize = urllib.parse.urlsplit(query.get("authorization_endpoint", ""))
            tenant = authorize.path.split("/")[1] if authorize.path.count("/") > 1 else "common"
            host = headers.get("Host") or urllib.parse.urlsplit(self.url).netloc
            return 200, {}, {
                "tenant_discovery_endpoint":
                    f"https://{host}/{tenant}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [{"preferred_network": host, "preferred_cache": host,
                              "aliases": [host]}],
            }  # fmt: skip
        if path.endswith("/v2.0/.well-known/openid-configuration"):
            tenant = path.split("/")[1]
            base = f"{self.url}/{tenant}"
            if headers.get("Host") == PUBLIC_AUTHORITY_HOST:
                # Reached under Azure AD's public name (bench/peers.py leads the
                # Azure peer here through a tunnel): announce that name, as
                # Azure AD does; MSAL checks the issuer against its authority.
                base = f"https://{PUBLIC_AUTHORITY_HOST}/{tenant}"
            return (
                200,
                {},
                {
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                    "issuer": f"{base}/v2.0",
                    "tenant_region_scope": "WW",
                },
            )
        if path.endswith("/oauth2/v2.0/token") and method == "POST":
            tenant = path.split("/")[1]
            form = dict(urllib.parse.parse_qsl(body.decode()))
            with self._lock:
                self.forms.append(form)
                fault = self.faults.pop(0) if self.faults else None
            if fault is not None:
                return fault
            return self._token(tenant, form)
        return 404, {}, {"error": "not_found"}

    def _token(self, tenant: str, form: dict[str, str]) -> Response:
        if tenant != self.tenant:
            return self._aad_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        client = form.get("client_id", "")
        assertion = form.get("client_assertion")
        if assertion is not None:
            expected = self.federated.get(client)
            matched = expected is not None and secrets.compare_digest(assertion, expected)
            if not matched and _subject(assertion) not in self.federated_subjects.get(client, ()):
                return self._aad_error(
                    401,
                    "invalid_client",
                    700213,
                    "No matching federated identity record found for presented assertion.",
                )
        else:
            expected = self.service_principals.get(client)
            given = form.get("client_secret", "")
            if expected is None or not secrets.compare_digest(given, expected):
                return self._aad_error(
                    401, "invalid_client", 7000215, "Invalid client secret provided."
                )
        return (
            200,
            {},
            {
                "token_type": "Bearer",
                "expires_in": self.expires_in,
                "ext_expires_in": self.expires_in,
                "access_token": self._issue(client),
            },
        )

    def _imds(self, query: dict[str, str], headers: Any) -> Response:
        if headers.get("Metadata") != "true":
            return (
                400,
                {},
                {
                    "error": "invalid_request",
                    "error_description": "Required metadata header not specified",
                },
            )
        client = query.get("client_id", "")
        if client not in self.managed:
            return 400, {}, {"error": "invalid_request", "error_description": "Identity not found"}
        now = int(time.time())
        return (
            200,
            {},
            {
                "access_token": self._issue(client or "system-assigned"),
                "client_id": client,
                "expires_in": "3599",
                "expires_on": str(now + 3599),
                "not_before": str(now),
                "resource": query.get("resource", ""),
                "token_type": "Bearer",
            },
        )


# -- Key Vault ------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _uint(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8 or 1, "big")


def public_jwk(public: Any) -> dict[str, Any]:
    if isinstance(public, rsa.RSAPublicKey):
        nums = public.public_numbers()
        return {
            "kty": "RSA",
            "n": _b64url(_uint(nums.n)),
            "e": _b64url(_uint(nums.e)),
            "key_ops": ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"],
        }
    if isinstance(public, ec.EllipticCurvePublicKey):
        nums = public.public_numbers()
        size = (public.curve.key_size + 7) // 8
        crv = {
            "secp256r1": "P-256",
            "secp384r1": "P-384",
            "secp521r1": "P-521",
            "secp256k1": "P-256K",
        }[public.curve.name]
        return {
            "kty": "EC",
            "crv": crv,
            "x": _b64url(nums.x.to_bytes(size, "big")),
            "y": _b64url(nums.y.to_bytes(size, "big")),
            "key_ops": ["sign", "verify"],
        }
    raise TypeError(type(public))


@dataclass
class Version:
    version: str
    created: int
    enabled: bool
    bundle: dict[str, Any]


class KeyVaultEmulator:
    """Key Vault's data plane for secrets, keys and certificates (GET and list)."""

    def __init__(self, tokens: TokenService, *, resource: str = "https://vault.azure.net") -> None:
        self.tokens = tokens
        self.resource = resource
        self.url = ""
        self.allowed: set[str] | None = None  # client ids allowed; None: everyone
        # Client ids whose access policy lacks "secrets/list" (they may still get).
        self.list_denied: set[str] = set()
        # Items per page of a list answer (Key Vault's maxresults is at most 25).
        self.page_size = 25
        self.requests: list[tuple[str, str, int]] = []
        # The User-Agent of each request, in order (what Key Vault's logs would show).
        self.user_agents: list[str] = []
        self._store: dict[tuple[str, str], list[Version]] = {}
        self._faults: list[tuple[int, dict[str, str], Any]] = []
        self._clock = int(time.time()) - 10_000
        self._lock = threading.Lock()

    # -- seeding (what a user would do with the portal or az CLI) --

    def _add(
        self,
        kind: str,
        name: str,
        bundle: dict[str, Any],
        *,
        enabled: bool = True,
        version: str | None = None,
        expires: int | None = None,
        not_before: int | None = None,
    ) -> str:
        with self._lock:
            self._clock += 1  # distinct creation times, in insertion order
            version = version or uuid.uuid4().hex
            attrs: dict[str, Any] = {
                "enabled": enabled,
                "created": self._clock,
                "updated": self._clock,
                "recoveryLevel": "Recoverable+Purgeable",
                "recoverableDays": 90,
            }
            # Key Vault's "exp" and "nbf": Unix times, present only when set.
            if expires is not None:
                attrs["exp"] = expires
            if not_before is not None:
                attrs["nbf"] = not_before
            full = dict(bundle, attributes=attrs)
            self._store.setdefault((kind, name), []).append(
                Version(version, self._clock, enabled, full)
            )
        return version

    def _id(self, kind: str, name: str, version: str) -> str:
        return f"{self.url}/{kind}/{name}/{version}"

    def set_secret(
        self, name: str, value: str, *, enabled: bool = True, content_type: str | None = None,
        tags: dict[str, str] | None = None, expires: int | None = None,
        not_before: int | None = None,
    ) -> str:
        version = uuid.uuid4().hex
        bundle: dict[str, Any] = {"value": value, "id": self._id("secrets", name, version)}
        if content_type:
            bundle["contentType"] = content_type
        if tags:
            bundle["tags"] = dict(tags)
        return self._add(
            "secrets", name, bundle, enabled=enabled, version=version, expires=expires,
            not_before=not_before,
        )

    def set_enabled(self, kind: str, name: str, version: str, enabled: bool) -> None:
        with self._lock:
            for v in self._store[(kind, name)]:
                if v.version == version:
                    v.enabled = enabled
                    v.bundle["attributes"]["enabled"] = enabled

    def create_key(self, name: str, kty: str = "RSA", *, curve: Any = None) -> tuple[str, Any]:
        if kty == "RSA":
            private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif kty == "EC":
            private = ec.generate_private_key(curve or ec.SECP256R1())
        else:
            raise ValueError(kty)
        return self._add_key(name, public_jwk(private.public_key())), private.public_key()

    def create_oct_key(self, name: str) -> str:
        version = uuid.uuid4().hex
        jwk = {"kty": "oct-HSM", "kid": self._id("keys", name, version), "key_ops": ["wrapKey"]}
        return self._add("keys", name, {"key": jwk}, version=version)

    def _add_key(
        self, name: str, jwk: dict[str, Any], version: str | None = None, managed: bool = False
    ) -> str:
        version = version or uuid.uuid4().hex
        bundle: dict[str, Any] = {"key": dict(jwk, kid=self._id("keys", name, version))}
        if managed:
            bundle["managed"] = True
        return self._add("keys", name, bundle, version=version)

    def import_certificate(
        self, name: str, *, pfx: bytes | None = None, pem: str | None = None, enabled: bool = True,
        tags: dict[str, str] | None = None,
    ) -> str:
        """Like Key Vault's import: a certificate, its key and its secret, one version id.

        ``tags`` are the certificate's; Key Vault shows them on its secret too.
        """
        tagged = {"tags": dict(tags)} if tags else {}
        if pfx is not None:
            key, leaf, _ = pkcs12.load_key_and_certificates(pfx, None)
            value, content_type = base64.b64encode(pfx).decode(), "application/x-pkcs12"
        else:
            assert pem is not None
            leaf = x509.load_pem_x509_certificates(pem.encode())[0]
            key = serialization.load_pem_private_key(pem.encode(), None)
            value, content_type = pem, "application/x-pem-file"
        assert leaf is not None and key is not None
        version = uuid.uuid4().hex
        der = leaf.public_bytes(serialization.Encoding.DER)
        kid, sid = self._id("keys", name, version), self._id("secrets", name, version)
        self._add_key(name, public_jwk(key.public_key()), version, managed=True)
        self._add(
            "secrets",
            name,
            {"value": value, "id": sid, "contentType": content_type, "kid": kid, "managed": True,
             **tagged},
            enabled=enabled,
            version=version,
        )
        self._add(
            "certificates",
            name,
            {
                "id": self._id("certificates", name, version),
                "kid": kid,
                "sid": sid,
                "x5t": _b64url(hashlib.sha1(der).digest()),  # noqa: S324 - x5t is SHA-1 by spec
                "cer": base64.b64encode(der).decode(),
                "contentType": content_type,
                **tagged,
            },
            enabled=enabled,
            version=version,
        )
        return version

    def fail_next(
        self, status: int, headers: dict[str, str] | None = None, times: int = 1,
        body: Any = None,
    ) -> None:
        """The next ``times`` authenticated requests answer ``status`` (429, 503, ...).

        ``body`` (raw bytes or a JSON value) replaces Key Vault's error body: an
        answer that is not what the API promises (``fail_next(200, body=b"oops")``).
        """
        with self._lock:
            self._faults.extend([(status, dict(headers or {}), body)] * times)

    def reset_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # -- the REST API --

    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> Response:
        status, out_headers, out = self._handle(method, raw_path, headers)
        with self._lock:
            self.requests.append((method, urllib.parse.urlsplit(raw_path).path, status))
            self.user_agents.append(headers.get("User-Agent") or "")
        return status, out_headers, out

    def _handle(self, method: str, raw_path: str, headers: Any) -> Response:
        auth = headers.get("Authorization") or ""
        if not auth.startswith("Bearer "):
            challenge = (
                f'Bearer authorization="{self.tokens.url}/{self.tokens.tenant}", '
                f'resource="{self.resource}"'
            )
            return (
                401,
                {"WWW-Authenticate": challenge},
                _kv_error("Unauthorized", "AKV10000: Request is missing a Bearer or PoP token."),
            )
        client = self.tokens.client_of(auth.removeprefix("Bearer "))
        if client is None:
            return 401, {}, _kv_error("Unauthorized", "AKV10032: Invalid issuer.")
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
        if fault is not None:
            status, fault_headers, body = fault
            if body is None:
                code = "Throttled" if status == 429 else "ServiceUnavailable"
                body = _kv_error(code, "Injected fault.")
            return status, fault_headers, body
        if self.allowed is not None and client not in self.allowed:
            return (
                403,
                {},
                _kv_error(
                    "Forbidden",
                    f"The user, group or application 'appid={client}' does not have "
                    "get permission on key vault 'test'.",
                ),
            )
        if method != "GET":
            return 405, {}, _kv_error("BadRequest", "Only reads are emulated.")
        split = urllib.parse.urlsplit(raw_path)
        parts = [p for p in split.path.split("/")]
        if parts[1:] == ["secrets"]:
            return self._list_secrets(client, urllib.parse.parse_qs(split.query))
        # /<kind>/<name>[/<version>|/versions]  (the SDK sends a trailing '/' for latest)
        if len(parts) < 3 or parts[1] not in ("secrets", "keys", "certificates"):
            return 404, {}, _kv_error("NotFound", "No such route.")
        kind, name = parts[1], parts[2]
        tail = parts[3] if len(parts) > 3 else ""
        singular = {"secrets": "Secret", "keys": "Key", "certificates": "Certificate"}[kind]
        with self._lock:
            versions = list(self._store.get((kind, name), []))
        if not versions:
            return (
                404,
                {},
                _kv_error(
                    f"{singular}NotFound",
                    f"A {singular.lower()} with (name/id) {name} was not found in this key vault.",
                ),
            )
        if tail == "versions":
            items = []
            for v in versions:
                item = {
                    k: v.bundle[k]
                    for k in ("id", "contentType", "kid", "x5t", "managed", "attributes")
                    if k in v.bundle
                }
                if kind == "keys":
                    item["kid"] = v.bundle["key"]["kid"]
                items.append(item)
            return 200, {}, {"value": items, "nextLink": None}
        chosen = (
            versions[-1] if not tail else next((v for v in versions if v.version == tail), None)
        )
        if chosen is None:
            return (
                404,
                {},
                _kv_error(
                    f"{singular}NotFound",
                    f"A {singular.lower()} with (name/id) {name}/{tail} was not found "
                    "in this key vault.",
                ),
            )
        if not chosen.enabled and kind != "certificates":
            return (
                403,
                {},
                _kv_error(
                    "Forbidden", f"Operation get is not allowed on a disabled {singular.lower()}."
                ),
            )
        return 200, {}, chosen.bundle


    def list_pages(self) -> int:
        """How many pages a full listing of the secrets takes now."""
        with self._lock:
            count = sum(1 for kind, _ in self._store if kind == "secrets")
        return max(1, -(-count // self.page_size))

    def _list_secrets(self, client: str, query: dict[str, list[str]]) -> Response:
        """GET {vault}/secrets: every secret's current version, without values, paged.

        As Key Vault answers it (7.x "Get Secrets"): ``id`` without a version,
        ``attributes`` (disabled secrets are listed too), ``tags``,
        ``contentType`` and ``managed``; at most ``maxresults`` (<= 25) per
        page and a ``nextLink`` carrying a ``$skiptoken`` while more remain.
        Needs the access policy's "secrets/list" (RBAC: secrets/readMetadata).
        """
        if client in self.list_denied:
            return 403, {}, _kv_error(
                "Forbidden",
                f"The user, group or application 'appid={client}' does not have secrets list "
                "permission on key vault 'test'.",
            )
        size = min(int((query.get("maxresults") or [self.page_size])[0]), self.page_size)
        start = int((query.get("$skiptoken") or ["0"])[0])
        with self._lock:
            names = sorted(name for kind, name in self._store if kind == "secrets")
            items = []
            for name in names[start:start + size]:
                current = self._store[("secrets", name)][-1].bundle
                item = {k: current[k] for k in ("contentType", "tags", "managed")
                        if k in current}
                item["id"] = f"{self.url}/secrets/{name}"
                item["attributes"] = dict(current["attributes"])
                items.append(item)
        more = start + size < len(names)
        version = (query.get("api-version") or ["7.6"])[0]
        next_link = (
            f"{self.url}/secrets?api-version={version}&$skiptoken={start + size}"
            f"&maxresults={size}" if more else None
        )
        return 200, {}, {"value": items, "nextLink": next_link}


def _kv_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


# -- fixtures' building block -----------------------------------------------------


@dataclass
class AzureWorld:
    pki: TestPki
    tokens: TokenService
    vault: KeyVaultEmulator

    def settings(self, **overrides: Any) -> Any:
        from provider.backends.azure import AzureSettings

        values: dict[str, Any] = {
            "authority_host": self.tokens.url,
            "keyvault_endpoint": self.vault.url + "/",
            "ca_file": str(self.pki.ca_file),
            # The challenge names vault.azure.net while the vault is localhost.
            "verify_challenge_resource": False,
            "api_version": "7.6",
        }
        values.update(overrides)
        return AzureSettings(**values)


@contextmanager
def azure_world(directory: Path | None = None) -> Iterator[AzureWorld]:
    """Token service + Key Vault, both HTTPS on free loopback ports; always stopped."""
    with tempfile.TemporaryDirectory(prefix="polysecret-azure-") as tmp:
        pki = TestPki(Path(directory or tmp))
        tokens = TokenService()
        vault = KeyVaultEmulator(tokens)
        with serve_https(tokens, pki) as token_url, serve_https(vault, pki) as vault_url:
            tokens.url = token_url
            vault.url = vault_url
            yield AzureWorld(pki, tokens, vault)


# -- benchmark -------------------------------------------------------------------


@contextmanager
def bench_env(n_objects: int, delay: float = 0.0) -> Iterator[BenchEnv]:
    """n secrets in the emulated vault, mounted with workload identity.

    With ``delay``, Key Vault and the token endpoint are reached through
    raw FaultProxies holding each request (TLS passes through; the certificate
    names 127.0.0.1).
    """
    from tests.support.faultproxy import FaultProxy
    from tests.support.tokens import pod_token as make_token

    pod_token = make_token(AUDIENCE)
    with azure_world() as world, ExitStack() as stack:
        vault_url, tokens_url = world.vault.url, world.tokens.url
        if delay:
            proxies = [
                FaultProxy.in_front_of(u, raw=True, latency=delay) for u in (vault_url, tokens_url)
            ]
            for proxy in proxies:
                stack.callback(proxy.close)
            vault_url, tokens_url = (proxy.url("https") for proxy in proxies)
        world.tokens.federated[WI_CLIENT] = pod_token
        names = [f"bench-{i}" for i in range(n_objects)]
        for name in names:
            world.vault.set_secret(name, f"value-of-{name}")
        objects = "array:\n" + "".join(
            f"  - |\n    objectName: {n}\n    objectType: secret\n" for n in names
        )
        settings = world.settings(authority_host=tokens_url, keyvault_endpoint=vault_url + "/")

        def sequential_fetch() -> None:
            # What the Azure provider does per mount: a fresh credential and a
            # fresh client (token request + TLS + 401 challenge), then one GET each.
            from azure.core.pipeline.transport import RequestsTransport
            from azure.identity import ClientAssertionCredential
            from azure.keyvault.secrets import SecretClient

            transport = RequestsTransport(connection_verify=str(world.pki.ca_file))
            cred = ClientAssertionCredential(
                TENANT,
                WI_CLIENT,
                lambda: pod_token,
                authority=tokens_url,
                transport=transport,
            )
            client = SecretClient(
                vault_url + "/",
                cred,
                transport=transport,
                verify_challenge_resource=False,
                api_version="7.6",
            )
            for name in names:
                client.get_secret(name)
            client.close()

        yield BenchEnv(
            backend="azure",
            settings=settings,
            parameters={
                "keyvaultName": "benchvault",
                "tenantID": TENANT,
                "clientID": WI_CLIENT,
                "objects": objects,
            },
            tokens={AUDIENCE: pod_token},
            sequential_fetch=sequential_fetch,
            go_baseline_args={
                "-vault-url": vault_url + "/",
                "-authority": tokens_url,
                "-tenant": TENANT,
                "-client-id": WI_CLIENT,
                "-assertion": pod_token,
                "-ca-file": str(world.pki.ca_file),
                "-secret-prefix": "bench-",
            },
        )
