"""File permission values as the three dialects write them.

The AWS and Azure dialects give ``filePermission`` as an octal *string*
(``"0600"``); the Vault dialect as a YAML integer whose octal literal YAML has
already turned into a number (``0600`` -> 384). Both end up here, so every
dialect rejects the same bad values with the same wording.
"""

from __future__ import annotations

import re

MAX_MODE = 0o777
_OCTAL = re.compile(r"^0?[0-7]{3}$|^0o[0-7]{1,3}$")


def parse_octal_mode(value: object) -> int:
    """An octal permission string such as ``"0644"``; raises ValueError."""
    if not isinstance(value, str):
        raise ValueError('must be an octal string such as "0644"')
    text = value.strip()
    if not _OCTAL.match(text):
        raise ValueError(f'{text[:12]!r} is not an octal file mode such as "0644"')
    mode = int(text.removeprefix("0o"), 8)
    if mode > MAX_MODE:
        raise ValueError(f"{text!r} is above 0777")
    return mode


def parse_integer_mode(value: object) -> int:
    """A mode given as an integer (YAML ``0644`` / ``0o644`` / 420)."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str):
            return parse_octal_mode(value)
        raise ValueError("must be an integer file mode such as 0644")
    if not 0 <= value <= MAX_MODE:
        raise ValueError(f"{value} is outside 0..0777")
    return value
