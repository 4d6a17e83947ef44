"""Go duration syntax (``30s``, ``2m``, ``1h30m``, ``1.5h``, ``0``), as the peers' users write it.

The three reference providers are Go programs and the SecretProviderClass
parameter ``refreshInterval`` follows External Secrets Operator, which parses
it with Go's ``time.ParseDuration``; this accepts the same strings (no sign:
a negative window means nothing).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from provider.errors import Problems

_UNITS = {
    "ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3,
    "s": 1.0, "m": 60.0, "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in ``text``; ValueError (without echoing long input) when it is not a duration."""
    s = text.strip()
    if s == "0":
        return 0.0
    if not s or len(s) > 64:
        raise ValueError("not a Go duration")
    pos = 0
    total = 0.0
    while pos < len(s):
        match = _PART.match(s, pos)
        if match is None:
            raise ValueError("not a Go duration")
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    return total


REFRESH_PARAMETER = "refreshInterval"


def refresh_interval(params: Mapping[str, str], problems: Problems) -> float | None:
    """The class's ``refreshInterval`` in seconds; None: it sets none (the provider's default)."""
    raw = params.get(REFRESH_PARAMETER)
    if raw is None or not raw.strip():
        return None
    try:
        return parse_duration(raw)
    except ValueError:
        problems.add(
            f"parameter {REFRESH_PARAMETER!r}: {raw.strip()[:32]!r} is not a duration such as "
            "'30s', '2m' or '1h' ('0' reads the backend on every mount)"
        )
        return None
