"""Reading SecretProviderClass parameter values shared by every dialect.

All parameters arrive as strings; booleans, YAML documents and required keys
are read the same way for AWS, Azure and Vault so that messages look alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from provider.errors import Problems

# libyaml's loader is ~10x faster than the pure-Python one; same safe subset.
SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_TRUE = {"1", "t", "true", "yes", "y", "on"}
_FALSE = {"", "0", "f", "false", "no", "n", "off"}


def parse_bool(
    params: Mapping[str, str], key: str, problems: Problems, default: bool = False
) -> bool:
    """A boolean parameter, spelled like Go's strconv.ParseBool accepts (and yes/no)."""
    raw = params.get(key)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return default if value == "" else False
    problems.add(f"parameter {key!r}: {raw[:20]!r} is not a boolean (true or false)")
    return default


def parse_yaml(text: str, what: str, problems: Problems) -> Any:
    """A YAML (or JSON) document inside a parameter; None (and a problem) if malformed."""
    try:
        return yaml.load(text, Loader=SafeLoader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problems.add(f"{what} is not valid YAML{where}")
        return None


def fold_keys(
    item: Mapping[Any, Any], known: tuple[str, ...], where: str, problems: Problems
) -> dict[str, Any]:
    """Match ``item``'s keys case-insensitively to ``known``; report unknown keys.

    The peers silently ignore misspelt keys (a top complaint: a typo in
    ``objectVersion`` mounts the latest version). We name them instead.
    """
    by_lower = {k.lower(): k for k in known}
    out: dict[str, Any] = {}
    for key, value in item.items():
        canonical = by_lower.get(str(key).lower())
        if canonical is None:
            problems.add(f"{where}: unknown key {str(key)[:40]!r} (known: {', '.join(known)})")
            continue
        if canonical in out:
            problems.add(f"{where}: key {canonical!r} is given twice")
            continue
        out[canonical] = value
    return out


def as_text(value: Any) -> str:
    """A scalar YAML value as the string the Go peers would have read."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip() if isinstance(value, str) else str(value)
