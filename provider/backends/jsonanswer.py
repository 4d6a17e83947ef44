"""A backend's 2xx answer body as the JSON object its API promises, or ``UnusableAnswer``.

The Vault and Key Vault transports speak HTTP themselves (http1); both get
bodies that must be JSON objects, and a body that is not (a proxy's HTML page,
an answer cut short) is a transient fault to retry, never an empty file. One
check and one exception class, so both backends' ``errors.translate`` map the
same thing the same way.
"""

from __future__ import annotations

import json
from typing import Any


class UnusableAnswer(Exception):
    """A 2xx answer that is not what the API sends (not JSON, not an object, a missing part).

    The reason names the shape only, never the body (it may hold a secret).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def json_object(data: bytes) -> dict[str, Any]:
    """``data`` parsed; UnusableAnswer unless it is a JSON object."""
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError):
        raise UnusableAnswer("is not JSON") from None
    if not isinstance(parsed, dict):
        raise UnusableAnswer("is not a JSON object")
    return parsed
