"""Key Vault answers -> file bytes, exactly as the Azure provider writes them.

* secret: the value as stored; objectEncoding decodes it first. A secret that
  backs a certificate (it has a ``kid``) holds a PFX (``application/x-pkcs12``)
  or PEM (``application/x-pem-file``): PEM is written as is; a PFX becomes PEM
  (PKCS#8 private key, then the certificates), or stays the base64 PFX with
  ``objectFormat: pfx``. The certificates are ordered as the Azure provider
  orders them (``--construct-pem-chain``, on by default): each linked to its
  issuer by Authority -> Subject Key Identifier, leaf -> intermediates -> root;
  when that does not put every certificate on one chain (identifiers missing,
  a certificate absent), they stay in the order the PKCS#12 holds them.
* key: the public key as PEM (RSA and EC); symmetric (oct) keys cannot be exported.
* cert: the certificate (the leaf, Key Vault's ``cer``) as PEM.

Then ``render`` lays one object's bytes out as files and object versions: the
file itself (and ``.crt``/``.key`` beside a PEM bundle when asked), or
``<file>/<i>`` per version of an ``objectVersionHistory``.

Pure functions over bytes and small value objects: no SDK, easy to test.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from provider.backends.azure.objects import AzureObject, ObjectType
from provider.backends.base import ObjectVersion, OutputFile
from provider.codes import ErrorCode
from provider.encodings import decode
from provider.errors import InvalidRequest

PFX_CONTENT_TYPE = "application/x-pkcs12"
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.S)
PEM_CONTENT_TYPE = "application/x-pem-file"
_CURVES: Mapping[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
    "P-256K": ec.SECP256K1(),
}


class Rendered(NamedTuple):
    """One object version as read: its file bytes, Key Vault version id, and metadata."""

    data: bytes
    version: str
    # The tags and attributes as JSON, when the object has a metadataFile; else b"".
    metadata: bytes = b""


@dataclass(frozen=True)
class Fetched:
    """What was read for one object: one rendered version, or its history newest first."""

    versions: tuple[Rendered, ...]
    # pfxPasswordFrom: the password object's value (None: no password wanted).
    password: bytes | None = field(default=None, repr=False)


def render(obj: AzureObject, fetched: Fetched) -> tuple[list[OutputFile], list[ObjectVersion]]:
    """``obj``'s files and object versions, as the Azure provider names them."""
    if fetched.password is not None:
        password = fetched.password.rstrip(b"\r\n")
        if not password:
            raise InvalidRequest(
                f"{obj.describe}: parameter 'pfxPasswordFrom': object {obj.password_from!r} "
                "is empty; a PFX password must not be",
                code=ErrorCode.InvalidParameters,
            )
        fetched = Fetched(
            tuple(r._replace(data=encrypt_pfx(obj, r.data, password)) for r in fetched.versions)
        )
    files, versions = _layout(obj, fetched)
    if obj.metadata_file:
        # The newest version's (the one mounted without a history).
        files.append(
            OutputFile(obj.metadata_file, obj.mode, fetched.versions[0].metadata, obj.name)
        )
    return files, versions


def _layout(obj: AzureObject, fetched: Fetched) -> tuple[list[OutputFile], list[ObjectVersion]]:
    if obj.history > 1:
        files = [
            OutputFile(f"{obj.file_name}/{i}", obj.mode, data, obj.name)
            for i, (data, _, _) in enumerate(fetched.versions)
        ]
        ids = [
            ObjectVersion(f"{obj.version_id}/{i}", v)
            for i, (_, v, _) in enumerate(fetched.versions)
        ]
        return files, ids
    data, version, _ = fetched.versions[0]
    files = [OutputFile(obj.file_name, obj.mode, data, obj.name)]
    parts = None
    if obj.separate and obj.type is ObjectType.SECRET and not obj.pfx:
        parts = split_cert_and_key(data)
    if parts is not None:
        # --write-cert-and-key-in-separate-files: <file>.crt and <file>.key
        # beside the bundle, as the Azure provider writes them.
        files[:0] = [
            OutputFile(obj.file_name + suffix, obj.mode, part, obj.name)
            for suffix, part in zip((".crt", ".key"), parts, strict=True)
        ]
    return files, [ObjectVersion(obj.version_id, version)]


@dataclass(frozen=True)
class SecretValue:
    value: str = field(repr=False)
    content_type: str
    cert_backed: bool  # the secret has a kid: it is a certificate's secret
    version: str


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int(value: object) -> int:
    raw = value if isinstance(value, bytes | bytearray) else _b64url(str(value))
    return int.from_bytes(bytes(raw), "big")


def render_secret(obj: AzureObject, secret: SecretValue) -> bytes:
    content: str | bytes = secret.value
    if secret.cert_backed:
        content_type = (secret.content_type or "").lower()
        if content_type == PFX_CONTENT_TYPE:
            if not obj.pfx:
                content = pfx_to_pem(secret.value, obj)
        elif content_type != PEM_CONTENT_TYPE:
            raise InvalidRequest(
                f"{obj.describe}: the certificate's secret has the unknown content type "
                f"{secret.content_type[:40]!r} (expected {PFX_CONTENT_TYPE} or {PEM_CONTENT_TYPE})",
                code=ErrorCode.InvalidSecretFormat,
            )
    try:
        return decode(content, obj.encoding)
    except ValueError as exc:
        raise InvalidRequest(
            f"{obj.describe}: parameter 'objectEncoding' {obj.encoding}: {exc}",
            code=ErrorCode.InvalidSecretFormat,
        ) from None


def _load_pkcs12(data: bytes, obj: AzureObject) -> pkcs12.PKCS12KeyAndCertificates:
    """A certificate's PFX as Key Vault keeps it: without a password (or an empty one)."""
    for password in (None, b""):
        try:
            return pkcs12.load_pkcs12(data, password)
        except ValueError:
            continue
    raise InvalidRequest(
        f"{obj.describe}: the certificate's secret is not a readable PKCS#12 (PFX) "
        "without a password",
        code=ErrorCode.InvalidSecretFormat,
    )


def _unbase64(text: str | bytes) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=False)
    except ValueError:
        return b""  # not base64: _load_pkcs12 says the PFX is unreadable


KeyIdKind = type[x509.AuthorityKeyIdentifier] | type[x509.SubjectKeyIdentifier]


def _key_id(cert: x509.Certificate, kind: KeyIdKind) -> bytes | None:
    try:
        value = cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    found = value.key_identifier if isinstance(value, x509.AuthorityKeyIdentifier) else value.digest
    return bytes(found) if found is not None else None


def key_id_chain(certs: Sequence[x509.Certificate]) -> list[x509.Certificate] | None:
    """``certs`` leaf -> intermediates -> root, linked by key identifiers, as the Azure
    provider does it; None when they do not all lie on that one chain.

    A certificate's issuer is the first other one whose Subject Key Identifier
    equals its Authority Key Identifier; the leaf is the first that issued none.
    """
    akis = [_key_id(c, x509.AuthorityKeyIdentifier) for c in certs]
    skis = [_key_id(c, x509.SubjectKeyIdentifier) for c in certs]
    parent: dict[int, int] = {}
    issued: set[int] = set()
    for i in range(len(certs)):
        for j in range(len(certs)):
            if i != j and akis[i] is not None and akis[i] == skis[j]:
                parent[i] = j
                issued.add(j)
                break
    leaf = next((i for i in range(len(certs)) if i not in issued), None)
    chain: list[x509.Certificate] = []
    while leaf is not None and len(chain) <= len(certs):
        chain.append(certs[leaf])
        leaf = parent.get(leaf)
    return chain if len(chain) == len(certs) else None


def pfx_to_pem(value: str, obj: AzureObject) -> bytes:
    loaded = _load_pkcs12(_unbase64(value), obj)
    key = loaded.key
    out = b""
    if key is not None:
        out += key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    held = [c.certificate for c in (loaded.cert, *loaded.additional_certs) if c is not None]
    ordered = key_id_chain(held) if obj.construct_chain else None
    for c in ordered or held:
        out += c.public_bytes(serialization.Encoding.PEM)
    return out


def encrypt_pfx(obj: AzureObject, data: bytes, password: bytes) -> bytes:
    """The PFX ``data`` (as rendered: base64 text, or binary with objectEncoding base64)
    encrypted with ``password`` (pfxPasswordFrom, #185), in the same form.

    Key Vault keeps a certificate's PFX without a password; tools such as IIS
    or Java keystores want one. cryptography's best available encryption
    (AES-256 and PBKDF2) protects key and certificates.
    """
    loaded = _load_pkcs12(data if obj.encoding == "base64" else _unbase64(data), obj)
    cert, key = loaded.cert, loaded.key
    if key is not None and not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise InvalidRequest(
            f"{obj.describe}: parameter 'pfxPasswordFrom': the PFX's key type cannot be "
            "re-encrypted (only RSA and EC keys, as Key Vault certificates have)",
            code=ErrorCode.UnsupportedKeyType,
        )
    out = pkcs12.serialize_key_and_certificates(
        cert.friendly_name if cert is not None else None,
        key,
        cert.certificate if cert is not None else None,
        [extra.certificate for extra in loaded.additional_certs] or None,
        serialization.BestAvailableEncryption(password),
    )
    return out if obj.encoding == "base64" else base64.b64encode(out)


def metadata(fields: Mapping[str, object]) -> bytes:
    """An object's tags and attributes as the metadataFile's JSON (#1177); times in ISO 8601."""
    def plain(value: object) -> object:
        return value.isoformat() if isinstance(value, datetime) else value

    doc = {key: plain(value) for key, value in fields.items()}
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def split_cert_and_key(pem: bytes) -> tuple[bytes, bytes] | None:
    """The certificates and the key of a PEM bundle (``--write-cert-and-key-in-separate-files``).

    None unless it holds at least one certificate and one private key: the
    Azure provider would write empty files then; we write no extra files.
    """
    certs, keys = b"", b""
    for block in _PEM_BLOCK.finditer(pem):
        text = block.group(0) + b"\n"
        if block.group(1) == b"CERTIFICATE":
            certs += text
        elif block.group(1).endswith(b"PRIVATE KEY"):
            keys += text
    return (certs, keys) if certs and keys else None


def render_key(obj: AzureObject, jwk: Mapping[str, object]) -> bytes:
    """The public half of a JSON Web Key as a PEM ``PUBLIC KEY``."""
    kty = str(jwk.get("kty") or "")
    public: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    try:
        if kty in ("RSA", "RSA-HSM"):
            public = rsa.RSAPublicNumbers(_int(jwk["e"]), _int(jwk["n"])).public_key()
        elif kty in ("EC", "EC-HSM"):
            curve = _CURVES.get(str(jwk.get("crv") or ""))
            if curve is None:
                raise InvalidRequest(
                    f"{obj.describe}: EC curve {jwk.get('crv')!r} is not supported",
                    code=ErrorCode.UnsupportedKeyType,
                )
            numbers = ec.EllipticCurvePublicNumbers(_int(jwk["x"]), _int(jwk["y"]), curve)
            public = numbers.public_key()
        else:
            raise InvalidRequest(
                f"{obj.describe}: key type {kty!r} has no public key to write (only RSA and "
                "EC keys can be mounted)",
                code=ErrorCode.UnsupportedKeyType,
            )
    except (KeyError, ValueError, TypeError):
        raise InvalidRequest(
            f"{obj.describe}: Key Vault returned an incomplete {kty} key", code=ErrorCode.InvalidKey
        ) from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return public.public_bytes(serialization.Encoding.PEM, spki)


def render_cert(obj: AzureObject, cer: bytes | bytearray | None) -> bytes:
    if not cer:
        raise InvalidRequest(f"{obj.describe}: Key Vault returned no certificate (cer)",
                             code=ErrorCode.InvalidCertificate)
    try:
        cert = x509.load_der_x509_certificate(bytes(cer))
    except ValueError:
        raise InvalidRequest(f"{obj.describe}: the certificate is not valid DER",
                             code=ErrorCode.InvalidCertificate) from None
    return cert.public_bytes(serialization.Encoding.PEM)
