"""What needs cryptography: PFX to PEM, PFX re-encryption, JSON Web Keys and certificates as PEM.

Split from ``render`` so that cryptography (~8 MiB of RSS) is imported only by
the first object that needs it: a certificate's secret, a key, a certificate,
or a PFX with pfxPasswordFrom. Outputs are exactly the Azure provider's (see
``render``'s docstring).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from provider.backends.azure.objects import AzureObject
from provider.codes import ErrorCode
from provider.errors import InvalidRequest

_CURVES: Mapping[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
    "P-256K": ec.SECP256K1(),
}


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int(value: object) -> int:
    raw = value if isinstance(value, bytes | bytearray) else _b64url(str(value))
    return int.from_bytes(bytes(raw), "big")


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
