"""Decoding of object contents before they are written (``encoding`` parameters).

Azure's ``objectEncoding`` and Vault's ``encoding`` both say how a value is
stored so that the file gets the decoded bytes. Errors name the encoding but
never the value, which is secret.
"""

from __future__ import annotations

import base64
import binascii

ENCODINGS = ("utf-8", "base64", "hex")


def normalize_encoding(name: str) -> str:
    """Canonical spelling (case-insensitive, ``utf8`` accepted); ValueError if unknown."""
    lowered = name.strip().lower()
    if lowered in ("", "utf-8", "utf8"):
        return "utf-8"
    if lowered in ENCODINGS:
        return lowered
    raise ValueError(f"{name[:20]!r} is not one of {', '.join(ENCODINGS)}")


def decode(value: str | bytes, encoding: str) -> bytes:
    """Bytes to write for ``value`` stored in ``encoding``; ValueError if malformed."""
    raw = value.encode("utf-8") if isinstance(value, str) else value
    if encoding == "utf-8":
        return raw
    try:
        if encoding == "base64":
            return base64.b64decode(raw, validate=True)
        if encoding == "hex":
            return binascii.unhexlify(raw.strip())
    except (binascii.Error, ValueError):
        raise ValueError(f"the value is not valid {encoding}") from None
    raise ValueError(f"unknown encoding {encoding!r}")
