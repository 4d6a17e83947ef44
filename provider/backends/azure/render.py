"""Key Vault answers -> file bytes, exactly as the Azure provider writes them.

* secret: the value as stored; objectEncoding decodes it first. A secret that
  backs a certificate (it has a ``kid``) holds a PFX (``application/x-pkcs12``)
  or PEM (``application/x-pem-file``): PEM is written as is; a PFX becomes PEM
  (PKCS#8 private key, then the certificates leaf -> intermediates -> root),
  or stays the base64 PFX with ``objectFormat: pfx``.
* key: the public key as PEM (RSA and EC); symmetric (oct) keys cannot be exported.
* cert: the certificate (the leaf, Key Vault's ``cer``) as PEM.

Pure functions over bytes and small value objects: no SDK, easy to test.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from provider.backends.azure.config import AzureObject
from provider.codes import ErrorCode
from provider.encodings import decode
from provider.errors import InvalidRequest

PFX_CONTENT_TYPE = "application/x-pkcs12"
PEM_CONTENT_TYPE = "application/x-pem-file"
_CURVES: Mapping[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
    "P-256K": ec.SECP256K1(),
}


@dataclass(frozen=True)
class SecretValue:
    value: str = field(repr=False)
    content_type: str
    cert_backed: bool  # the secret has a kid: it is a certificate's secret
    version: str


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int(value: Any) -> int:
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


Pfx = tuple[Any, x509.Certificate | None, list[x509.Certificate]]


def _load_pfx(value: str, obj: AzureObject) -> Pfx:
    try:
        data = base64.b64decode(value.strip(), validate=False)
    except ValueError:
        data = b""
    for password in (None, b""):
        try:
            return pkcs12.load_key_and_certificates(data, password)
        except ValueError:
            continue
    raise InvalidRequest(
        f"{obj.describe}: the certificate's secret is not a readable PKCS#12 (PFX) "
        "without a password",
        code=ErrorCode.InvalidSecretFormat,
    )


def order_chain(
    leaf: x509.Certificate | None, others: Sequence[x509.Certificate]
) -> list[x509.Certificate]:
    """Certificates ordered leaf -> intermediates -> root, following issuers.

    The leaf is the certificate matching the key when known, else the one that
    issued no other. Certificates that are not on the chain follow at the end,
    so nothing the PFX held is dropped.
    """
    pool = list(others)
    if leaf is None:
        if not pool:
            return []
        issuers = {c.issuer for c in pool if c.issuer != c.subject}
        # Issues no other certificate here; a self-signed root only if nothing else is.
        candidates = [c for c in pool if c.subject not in issuers] or pool
        leaf = min(candidates, key=lambda c: c.issuer == c.subject)
        pool.remove(leaf)
    chain = [leaf]
    current = leaf
    while pool and current.issuer != current.subject:
        nxt = next((c for c in pool if c.subject == current.issuer), None)
        if nxt is None:
            break
        chain.append(nxt)
        pool.remove(nxt)
        current = nxt
    return chain + pool


def pfx_to_pem(value: str, obj: AzureObject) -> bytes:
    key, cert, extra = _load_pfx(value, obj)
    out = b""
    if key is not None:
        out += key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    for c in order_chain(cert, extra):
        out += c.public_bytes(serialization.Encoding.PEM)
    return out


def render_key(obj: AzureObject, jwk: Mapping[str, Any]) -> bytes:
    """The public half of a JSON Web Key as a PEM ``PUBLIC KEY``."""
    kty = str(jwk.get("kty") or "")
    public: Any
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
    return bytes(public.public_bytes(serialization.Encoding.PEM, spki))


def render_cert(obj: AzureObject, cer: bytes | None) -> bytes:
    if not cer:
        raise InvalidRequest(f"{obj.describe}: Key Vault returned no certificate (cer)",
                             code=ErrorCode.InvalidCertificate)
    try:
        cert = x509.load_der_x509_certificate(bytes(cer))
    except ValueError:
        raise InvalidRequest(f"{obj.describe}: the certificate is not valid DER",
                             code=ErrorCode.InvalidCertificate) from None
    return cert.public_bytes(serialization.Encoding.PEM)
