"""Reading a large JSON document member by member, keeping only some members.

botocore's data files (endpoints.json: 1.2 MB, SSM's model: 1.3 MB) are parsed
whole by json.load, and the interpreter keeps the peak of such a parse as RSS
even when nearly all of it is dropped right after (freed objects leave their
memory pools touched). Walking the outer objects here, each member's value is
built by json's own scanner one at a time and dropped at once unless kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable

# A member's reader: (key, text, index of its value) -> (value or SKIP, index past it).
Read = Callable[[str, str, int], tuple[object, int]]
SKIP = object()
DECODER = json.JSONDecoder()


def ws(text: str, at: int) -> int:
    """Past the JSON whitespace at ``text[at]``."""
    while at < len(text) and text[at] in " \t\n\r":
        at += 1
    return at


def value(_key: str, text: str, at: int) -> tuple[object, int]:
    """A member read whole (the default reader)."""
    found, end = DECODER.raw_decode(text, at)
    return found, end


def walk_object(text: str, at: int, read: Read) -> tuple[dict[str, object], int]:
    """The JSON object at ``text[at]``, each member's value read by ``read(key, text, at)``.

    Raises ValueError or IndexError where the text is not a JSON object.
    """
    found: dict[str, object] = {}
    if text[at] != "{":
        raise ValueError(f"an object expected at {at}")
    at = ws(text, at + 1)
    if text[at] == "}":
        return found, at + 1
    while True:
        key, at = DECODER.raw_decode(text, at)
        at = ws(text, at)
        if not isinstance(key, str) or text[at] != ":":
            raise ValueError(f"a member expected at {at}")
        member, at = read(key, text, ws(text, at + 1))
        if member is not SKIP:
            found[key] = member
        at = ws(text, at)
        if text[at] == "}":
            return found, at + 1
        if text[at] != ",":
            raise ValueError(f"',' or '}}' expected at {at}")
        at = ws(text, at + 1)


def walk_list(text: str, at: int, read: Read) -> tuple[list[object], int]:
    """The JSON list at ``text[at]``, each item read by ``read("", text, at)``."""
    found: list[object] = []
    if text[at] != "[":
        raise ValueError(f"a list expected at {at}")
    at = ws(text, at + 1)
    if text[at] == "]":
        return found, at + 1
    while True:
        item, at = read("", text, at)
        found.append(item)
        at = ws(text, at)
        if text[at] == "]":
            return found, at + 1
        if text[at] != ",":
            raise ValueError(f"',' or ']' expected at {at}")
        at = ws(text, at + 1)


def walk(text: str, read: Read) -> dict[str, object]:
    """The whole text, a JSON object, walked with ``read`` for its members."""
    found, end = walk_object(text, ws(text, 0), read)
    if ws(text, end) != len(text):
        raise ValueError(f"extra data at {end}")
    return found
