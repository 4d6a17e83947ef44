"""Key Vault's JSON answers -> what a mount uses: rendered bytes, version ids, names, metadata.

Each function runs on the event loop through ``FetchContext.call_async`` (one
read and its checks), so an answer without what the REST API promises (no
``value``, no ``id``, a key without ``kty``, a list item without attributes)
is Unavailable and retried like any transient fault: never an empty file or
an empty version. Fields, as Key Vault's REST API (7.x) names them:

* secret bundle: ``value``, ``id`` (``.../secrets/<name>/<version>``),
  ``contentType``, ``kid`` (a certificate's secret), ``attributes``, ``tags``;
* key bundle: ``key`` (a JSON Web Key whose ``kid`` is the id), ``attributes``, ``tags``;
* certificate bundle: ``cer`` (base64 DER), ``id``, ``attributes``, ``tags``;
* list items: ``id`` (``kid`` for keys), ``attributes``, ``tags``; pages by ``nextLink``.
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse
from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import UTC, datetime

from provider.backends.azure.clients import ForeignLink, Json, VaultClient
from provider.backends.azure.objects import AzureObject, ObjectType
from provider.backends.azure.render import (
    Rendered,
    SecretValue,
    metadata,
    render_secret,
)
from provider.errors import Unavailable
from provider.listing import Select

_JWK_FIELDS = ("kty", "n", "e", "crv", "x", "y")
_EPOCH = datetime.min.replace(tzinfo=UTC)


async def read(client: VaultClient, obj: AzureObject, version: str) -> Rendered:
    """One GET of ``obj`` (``version``, or its current one) and its rendering."""
    bundle = await client.get(obj.name, version)
    if obj.type is ObjectType.SECRET:
        value = bundle.get("value")
        if not isinstance(value, str):
            raise _unusable(obj, "no value")
        secret = SecretValue(
            value=value,
            content_type=_text(bundle.get("contentType")),
            cert_backed=bool(bundle.get("kid")),
            version=_version(obj, bundle.get("id")),  # before rendering: an answer first
        )
        data = render_secret(obj, secret)
        return Rendered(data, secret.version, _metadata(obj, bundle, secret.content_type or None))
    if obj.type is ObjectType.KEY:
        from provider.backends.azure.pki import render_key

        jwk = bundle.get("key")
        if not isinstance(jwk, dict):
            raise _unusable(obj, "no key")
        if not jwk.get("kty"):
            raise _unusable(obj, "a key without a type (kty)")
        version = _version(obj, jwk.get("kid"))
        fields = {name: jwk.get(name) for name in _JWK_FIELDS}
        return Rendered(render_key(obj, fields), version, _metadata(obj, bundle))
    from provider.backends.azure.pki import render_cert

    # The id first: an answer without one is no certificate answer at all.
    version = _version(obj, bundle.get("id"))
    cer = bundle.get("cer")
    try:
        # Standard base64, decoded as leniently as the SDK's models decode it.
        der = base64.b64decode(cer) if isinstance(cer, str) else None
    except binascii.Error:
        raise _unusable(obj, "a certificate (cer) that is not base64") from None
    return Rendered(render_cert(obj, der), version, _metadata(obj, bundle))


async def history(client: VaultClient, obj: AzureObject) -> list[str]:
    """Versions to mount, newest first: enabled only, by creation time, up to N.

    With objectVersion, the history starts at that version (it and older ones).
    """
    enabled: list[tuple[datetime, str]] = []
    async with aclosing(_pages(obj, client.versions(obj.name))) as items:
        async for item in items:
            attributes = _attributes(obj, item)
            version = _version_or_none(item.get("id") or item.get("kid"))
            if attributes.get("enabled") and version:
                enabled.append((_time(attributes.get("created")) or _EPOCH, version))
    enabled.sort(key=lambda pair: pair[0], reverse=True)
    ids = [version for _, version in enabled]
    if obj.version:
        if obj.version not in ids:
            return []
        ids = ids[ids.index(obj.version):]
    return ids[: obj.history]


async def list_secrets(
    client: VaultClient, obj: AzureObject, select: Select
) -> tuple[str, ...]:
    """Names of the enabled secrets ``select`` matches (GET {vault}/secrets, every page).

    Key Vault filters nothing server-side: prefix and tags are matched here,
    from the list answer (no value is read). Listing stops one past the bound:
    that many already fail the mount, so the rest need not be paged through.
    """
    found: list[str] = []
    async with aclosing(_pages(obj, client.items())) as items:
        async for item in items:
            attributes = _attributes(obj, item)
            name = _name(item.get("id"))
            if not name or not isinstance(attributes.get("enabled"), bool):
                raise _unusable(obj, "a list item without a name or attributes")
            tags = _tags(obj, item)
            if not (attributes["enabled"] and name.startswith(select.path)) or any(
                tags.get(key) != value for key, value in select.tags
            ):
                continue
            found.append(name)
            if len(found) > select.max:
                break
    return tuple(sorted(found))


async def _pages(obj: AzureObject, items: AsyncGenerator[Json, None]) -> AsyncGenerator[Json, None]:
    try:
        async with aclosing(items):  # closed at once when the listing stops early
            async for item in items:
                yield item
    except ForeignLink as exc:
        raise _unusable(obj, f"a nextLink to another host ({str(exc)[:80]!r})") from None


def _metadata(obj: AzureObject, bundle: Json, content_type: str | None = None) -> bytes:
    """The metadataFile's JSON (only built when the object has one)."""
    if not obj.metadata_file:
        return b""
    attributes = _attributes(obj, bundle)
    return metadata({
        "tags": _tags(obj, bundle),
        "enabled": attributes.get("enabled"),
        "created": _time(attributes.get("created")),
        "updated": _time(attributes.get("updated")),
        "expires": _time(attributes.get("exp")),
        "notBefore": _time(attributes.get("nbf")),
        "contentType": content_type,
        "version": _version_or_none(bundle.get("id") or (bundle.get("key") or {}).get("kid")),
    })


def _attributes(obj: AzureObject, item: Json) -> Json:
    attributes = item.get("attributes", {})
    if not isinstance(attributes, dict):
        raise _unusable(obj, "attributes that are not an object")
    return attributes


def _tags(obj: AzureObject, item: Json) -> Json:
    tags = item.get("tags") or {}
    if not isinstance(tags, dict):
        raise _unusable(obj, "tags that are not an object")
    return tags


def _time(value: object) -> datetime | None:
    """Key Vault's attribute times are Unix seconds; anything else (or out of range) is none."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, ValueError, OSError):
            return None
    return None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _path(identifier: object) -> list[str]:
    """``https://<vault>/<collection>/<name>[/<version>]`` -> its path's parts."""
    if not isinstance(identifier, str):
        return []
    try:
        path = urllib.parse.urlsplit(identifier).path
    except ValueError:  # not a URL (an unclosed IPv6 bracket): no id
        return []
    return [p for p in path.split("/") if p]


def _name(identifier: object) -> str:
    parts = _path(identifier)
    return urllib.parse.unquote(parts[1]) if len(parts) >= 2 else ""


def _version_or_none(identifier: object) -> str | None:
    parts = _path(identifier)
    return parts[2] if len(parts) >= 3 else None


def _version(obj: AzureObject, identifier: object) -> str:
    """The object's version id from its Key Vault id; every real answer carries one."""
    version = _version_or_none(identifier)
    if not version:
        raise _unusable(obj, "no id (no version)")
    return version


def _unusable(obj: AzureObject, what: str) -> Unavailable:
    # Key Vault always sends these: a proxy or a fault answered. Retried; never
    # an empty file or an empty version.
    return Unavailable(f"{obj.describe}: Key Vault's answer has {what}; not a usable answer")
