"""File contents and object versions from a Vault API response, as the peer writes them.

vault-csi-provider marshals with Go's encoding/json, so drop-in users get the
same bytes only if we write JSON the same way: compact, map keys sorted, the
api.Secret fields in struct order, and ``<``, ``>``, ``&``, U+2028, U+2029
escaped. With ``secretKey`` the value comes from ``data`` (from ``data.data``
when that is a map: KV v2), strings raw and anything else as JSON.

Versions: a KV v2 response says its version; otherwise the version is an
HMAC-SHA256 of the object's parameters and the content under the provider
key. Never a plain hash, which would let anyone who sees the
SecretProviderClassPodStatus test guesses of a low-entropy secret.

A 200 answer without ``data`` (or a KV v2 answer without ``data.data`` or its
version) is not something Vault sends: it is Unavailable (retried), never a
file holding ``null`` and never a made-up version.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field

from provider.backends.base import ObjectVersion, OutputFile
from provider.backends.vault.config import VaultObject
from provider.backends.vault.transport import Answer
from provider.codes import ErrorCode
from provider.derived.keys import dig
from provider.encodings import decode
from provider.errors import InvalidRequest, NotFound, Unavailable


@dataclass(frozen=True)
class Fetched:
    """What a mount read for one object: Vault's answer (None: 204 No Content)."""

    answer: Answer | None
    # The provider's key for HMAC versions (see the module docstring).
    hmac_key: bytes = field(repr=False)
    # A ``select``: each match's file name (under objectName) and answer.
    matches: tuple[tuple[str, Answer | None], ...] = ()

_GO_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)
# api.Secret's fields in declaration order, with Go's zero values; the last three
# are `omitempty`.
_SECRET_FIELDS: tuple[tuple[str, object], ...] = (
    ("request_id", ""),
    ("lease_id", ""),
    ("lease_duration", 0),
    ("renewable", False),
    ("data", None),
    ("warnings", None),
)
_OMITEMPTY = ("auth", "wrap_info", "mount_type")


def go_json(value: object) -> str:
    """``value`` as Go's json.Marshal writes it (maps have sorted keys)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    for raw, escaped in _GO_ESCAPES:
        text = text.replace(raw, escaped)  # these only occur inside JSON strings
    return text


def whole_response(answer: Answer) -> bytes:
    parts = [f'"{name}":{go_json(answer.get(name, zero))}' for name, zero in _SECRET_FIELDS]
    parts.extend(f'"{name}":{go_json(answer[name])}' for name in _OMITEMPTY if answer.get(name))
    return ("{" + ",".join(parts) + "}").encode("utf-8")


def _subject(obj: VaultObject) -> str:
    return f"object {obj.object_name!r} (secretPath {obj.secret_path!r})"


def _unusable(obj: VaultObject, what: str) -> Unavailable:
    # Vault answers a read it cannot serve with 404 (or 204): a 200 without the
    # data is a fault in between, retried, never an empty file.
    return Unavailable(f"{_subject(obj)}: Vault's answer {what}; not a usable answer")


def check(obj: VaultObject, answer: Answer | None) -> None:
    """Unavailable unless ``answer`` has what a Vault read promises.

    Called inside the read (so the retry loop sees it) and again by ``render``.
    """
    if answer is None:
        return  # 204 No Content: nothing at this path (NotFound when rendered)
    data = answer.get("data")
    if not isinstance(data, dict):
        raise _unusable(obj, "has no 'data' object")
    if not _kv2_shaped(data):
        return
    if not isinstance(data.get("data"), dict):
        raise _unusable(obj, "is a KV v2 answer without its 'data.data' object")
    metadata = data.get("metadata")
    version = metadata.get("version") if isinstance(metadata, dict) else None
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _unusable(obj, "is a KV v2 answer without a version in 'data.metadata'")


def contents(obj: VaultObject, answer: Answer | None) -> bytes:
    """The file's bytes for ``obj`` from Vault's ``answer`` (None: 204, no content)."""
    check(obj, answer)
    data = answer.get("data") if answer else None
    if answer is None or not isinstance(data, dict):
        raise NotFound(f"{_subject(obj)}: Vault returned no data")
    if not obj.secret_key:
        return whole_response(answer)
    nested = data.get("data")
    values = nested if isinstance(nested, dict) else data
    value = _lookup(values, obj.secret_key)
    if value is _MISSING:
        raise NotFound(
            f"{_subject(obj)}: parameter 'secretKey': key {obj.secret_key!r} does not exist "
            "at the secret path"
        )
    text = value if isinstance(value, str) else go_json(value)
    try:
        return decode(text, obj.encoding)
    except ValueError as exc:
        # The message names the encoding, never the value.
        raise InvalidRequest(
            f"{_subject(obj)}: parameter 'encoding': key {obj.secret_key!r}: {exc}",
            code=ErrorCode.InvalidSecretFormat,
        ) from None


_MISSING = object()


def _lookup(values: dict[str, object], key: str) -> object:
    """``values[key]``; else, for a dotted key, the value at that path into nested maps.

    The key as written wins (``tls.crt`` is a common key name, and the peer
    reads it so); only a key that does not exist is read as a path
    (``config.db.password``), which the peer would have failed.
    """
    if key in values:
        return values[key]
    steps = key.split(".")
    value, taken = dig(values, steps)
    return value if "." in key and taken == len(steps) else _MISSING


def _kv2_shaped(data: dict[str, object]) -> bool:
    """A KV v2 read: exactly ``data`` and ``metadata`` (a KV v1 secret with a key
    named ``data`` has others, or no ``metadata``)."""
    return set(data) == {"data", "metadata"}


def kv2_version(answer: Answer | None) -> str:
    """The KV v2 version of a checked ``answer``, or "" when it is not a KV v2 read."""
    data = answer.get("data") if answer else None
    if not isinstance(data, dict) or not _kv2_shaped(data):
        return ""
    metadata = data.get("metadata")
    version = metadata.get("version") if isinstance(metadata, dict) else None
    return str(version) if isinstance(version, int) else ""


def hmac_version(key: bytes, obj: VaultObject, content: bytes, match: str = "") -> str:
    mac = hmac.new(key, obj.canonical.encode("utf-8"), hashlib.sha256)
    mac.update(b"\x00")  # the parameters' JSON cannot run into the content
    if match:
        mac.update(match.encode("utf-8") + b"\x00")
    mac.update(content)
    return mac.hexdigest()


def render(obj: VaultObject, fetched: Fetched) -> tuple[list[OutputFile], list[ObjectVersion]]:
    """The object's files and versions from what the mount read.

    A ``select`` writes one file per match, ``<objectName>/<name>``, each
    with its own version (so rotation sees one added, changed or removed).
    """
    if obj.select is None:
        answers: tuple[tuple[str, Answer | None], ...] = (("", fetched.answer),)
    else:
        answers = fetched.matches
    files: list[OutputFile] = []
    versions: list[ObjectVersion] = []
    for match, answer in answers:
        path = f"{obj.object_name}/{match}" if match else obj.object_name
        data = contents(obj, answer)
        version = kv2_version(answer) or hmac_version(fetched.hmac_key, obj, data, match)
        files.append(OutputFile(path, obj.mode, data, obj.object_name))
        versions.append(ObjectVersion(path, version))
    if obj.metadata_file:
        # Derived from the same answer: its version is the object's.
        files.append(OutputFile(obj.metadata_file, obj.mode, metadata(obj, fetched.answer),
                                obj.object_name))
    return files, versions


def metadata(obj: VaultObject, answer: Answer | None) -> bytes:
    """``metadataFile``'s bytes: the KV v2 answer's ``data.metadata`` as JSON.

    Version, created_time, deletion_time, destroyed and custom_metadata, as
    Vault sent them. Only a KV v2 read has them: anything else fails the mount
    naming the parameter, never an empty or made-up file.
    """
    data = answer.get("data") if answer else None
    if not isinstance(data, dict) or not _kv2_shaped(data):
        raise InvalidRequest(
            f"{_subject(obj)}: parameter 'metadataFile': Vault's answer is not a KV v2 read "
            "(no 'data.metadata'); use it only with a KV v2 path such as 'secret/data/app'",
            code=ErrorCode.InvalidParameters,
        )
    return go_json(data["metadata"]).encode("utf-8")
