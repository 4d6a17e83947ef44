"""Selection by prefix or path: the ``select`` key an object may carry in every dialect.

An object with ``select`` mounts every backend entry under a path or name
prefix, one file per match, instead of one named entry (SSM
GetParametersByPath, Secrets Manager ListSecrets, a Vault KV v2 LIST, Key
Vault secrets by prefix or tag). The shape is parsed here once, so it has the
same keys, defaults, bounds and messages in the three dialects; each backend
only lists and reads.

A listing is bounded twice: by the object's ``max`` (default
:data:`DEFAULT_MAX`) and by the provider's ``--max-objects``. Over the bound
the mount fails naming it (:func:`check_bound`), never mounting part of a
listing; a listing that matches nothing fails too (NOT_FOUND), since a pod
that expects files must not start with none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from provider.codes import ErrorCode
from provider.dialect import as_text, fold_keys
from provider.errors import InvalidRequest, NotFound, Problems
from provider.paths import MAX_ELEMENT_BYTES

# A selection without ``max`` mounts at most this many entries.
DEFAULT_MAX = 100

KEYS = ("path", "recursive", "tags", "max")


@dataclass(frozen=True)
class Select:
    """A validated ``select``: what to list and how many matches are allowed."""

    path: str
    recursive: bool = False
    tags: tuple[tuple[str, str], ...] = ()
    max: int = DEFAULT_MAX


def parse(
    raw: Any,
    where: str,
    problems: Problems,
    *,
    provider_max: int,
    recursive: bool,
    tags: bool,
) -> Select | None:
    """``raw`` (an object's ``select`` value) as a :class:`Select`, or None with problems added.

    ``recursive`` and ``tags`` say whether this kind of object supports those
    keys (SSM and Vault have paths; Secrets Manager and Key Vault have tags);
    an unsupported key is a problem, never silently ignored.
    """
    at = f"{where}: parameter 'select'"
    if not isinstance(raw, Mapping):
        problems.add(f"{at} must be a mapping with 'path' (and optionally {', '.join(KEYS[1:])})")
        return None
    before = len(problems)
    fields = fold_keys(raw, KEYS, at, problems)
    path = as_text(fields.get("path"))
    if not path:
        problems.add(f"{at}: 'path' is required (the path or name prefix to list)")
    elif len(path) > 2048 or "\x00" in path:
        problems.add(f"{at}: 'path' is not a usable path or prefix")
    deep = _bool(fields.get("recursive"), f"{at}: 'recursive'", problems)
    if deep and not recursive:
        problems.add(f"{at}: 'recursive' does not apply to this object type (it has no paths)")
    wanted = _tags(fields.get("tags"), f"{at}: 'tags'", problems)
    if wanted and not tags:
        problems.add(f"{at}: 'tags' does not apply to this object type (it has no tags)")
    bound = _max(fields.get("max"), f"{at}: 'max'", problems, provider_max)
    if len(problems) > before:
        return None
    return Select(path=path, recursive=deep, tags=wanted, max=bound)


def _bool(value: Any, where: str, problems: Problems) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    text = as_text(value).lower()
    if text in {"true", "false", ""}:
        return text == "true"
    problems.add(f"{where} must be true or false")
    return False


def _tags(value: Any, where: str, problems: Problems) -> tuple[tuple[str, str], ...]:
    if value is None or value == "":
        return ()
    if not isinstance(value, Mapping) or not value:
        problems.add(f"{where} must be a mapping of tag names to values")
        return ()
    if len(value) > 10:
        problems.add(f"{where}: at most 10 tags")
        return ()
    out = []
    for key, val in value.items():
        name, text = as_text(key), as_text(val)
        if not name or len(name) > 128 or len(text) > 256:
            problems.add(f"{where}: tag {name[:40]!r} is not a usable tag name and value")
            continue
        out.append((name, text))
    return tuple(sorted(out))


def _max(value: Any, where: str, problems: Problems, provider_max: int) -> int:
    if value is None or value == "":
        return min(DEFAULT_MAX, provider_max)
    try:
        if isinstance(value, bool):
            raise ValueError
        number = int(as_text(value))
    except ValueError:
        problems.add(f"{where} must be a whole number")
        return 0
    if number < 1 or number > provider_max:
        problems.add(
            f"{where} must be between 1 and {provider_max} (the provider's --max-objects)"
        )
        return 0
    return number


def check_bound(select: Select, count: int, subject: str) -> None:
    """Fail the mount when a listing found nothing or more than its bound (nothing partial)."""
    if count > select.max:
        raise InvalidRequest(
            f"{subject}: 'select' matched more than its bound max={select.max} "
            f"(path {select.path!r}): narrow the path or tags, or raise 'max' "
            "(up to the provider's --max-objects)",
            code=ErrorCode.SelectionTooLarge,
        )
    if count == 0:
        raise NotFound(f"{subject}: 'select' matched nothing under {select.path!r}")


def relative_name(select: Select, name: str, subject: str) -> str:
    """The file path of match ``name``: its name relative to the selection's path.

    Deeper levels (a recursive listing) become subdirectories. A name that is
    not a valid file path fails the mount naming it: it is never renamed, since
    two names could then land in one file.
    """
    rest = name[len(select.path):] if name.startswith(select.path) else name
    rest = rest.strip("/")
    parts = rest.split("/")
    for part in parts:
        if part in {"", ".", ".."} or part.startswith("..") or "\x00" in part or (
            len(part.encode("utf-8", "surrogatepass")) > MAX_ELEMENT_BYTES
        ):
            raise InvalidRequest(
                f"{subject}: 'select' matched {name[:120]!r}, which is not a valid file path "
                "under the volume: leave it out (narrow the path or tags)",
                code=ErrorCode.InvalidParameters,
            )
    return rest
