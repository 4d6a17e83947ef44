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
What needs cryptography (PFX, keys, certificates) is in ``pki``, imported
only when an object needs it: a mount of plain secrets does not load it
(~8 MiB of RSS).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from provider.backends.azure.objects import AzureObject, ObjectType
from provider.backends.base import ObjectVersion, OutputFile
from provider.codes import ErrorCode
from provider.encodings import decode
from provider.errors import InvalidRequest

PFX_CONTENT_TYPE = "application/x-pkcs12"
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.S)
PEM_CONTENT_TYPE = "application/x-pem-file"



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
        from provider.backends.azure import pki

        password = fetched.password.rstrip(b"\r\n")
        if not password:
            raise InvalidRequest(
                f"{obj.describe}: parameter 'pfxPasswordFrom': object {obj.password_from!r} "
                "is empty; a PFX password must not be",
                code=ErrorCode.InvalidParameters,
            )
        fetched = Fetched(
            tuple(
                r._replace(data=pki.encrypt_pfx(obj, r.data, password))
                for r in fetched.versions
            )
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


def render_secret(obj: AzureObject, secret: SecretValue) -> bytes:
    content: str | bytes = secret.value
    if secret.cert_backed:
        content_type = (secret.content_type or "").lower()
        if content_type == PFX_CONTENT_TYPE:
            if not obj.pfx:
                from provider.backends.azure.pki import pfx_to_pem

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
