"""Reading SecretProviderClass parameter values shared by every dialect.

All parameters arrive as strings; booleans, YAML documents and required keys
are read the same way for AWS, Azure and Vault so that messages look alike.
Every YAML document of a class goes through :func:`parse_yaml`, which bounds
nesting and alias expansion (``provider.boundedyaml``): a class author must
not be able to crash or stall the provider every pod of the node depends on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from provider.errors import Problems
from provider.modes import parse_integer_mode, parse_octal_mode

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


# Documents already parsed while one class is read: (text, text_scalars) ->
# (value, problem). See parse_once.
ParseMemo = dict[tuple[str, bool], tuple[Any, str]]
_parsed: ContextVar[ParseMemo | None] = ContextVar("parsed_yaml", default=None)


@contextmanager
def parse_once(memo: ParseMemo | None = None) -> Iterator[ParseMemo]:
    """Within this block a parameter's YAML is parsed once, however often it is read.

    Backend selection sniffs ``objects`` and the backend's plan reads it again;
    a class of 12,000 objects takes 0.8 s per parse. Pass the same ``memo`` to
    two blocks (in different threads) to share what the first one parsed.
    """
    memo = {} if memo is None else memo
    token = _parsed.set(memo)
    try:
        yield memo
    finally:
        _parsed.reset(token)


def parse_yaml(text: str, what: str, problems: Problems, *, text_scalars: bool = False) -> Any:
    """A YAML (or JSON) document inside a parameter; None (and a problem) if malformed.

    ``text_scalars`` keeps every plain scalar a string. Aliases and nesting are
    bounded (``provider.boundedyaml``): a document over them is refused, naming
    the parameter, before anything walks it.
    """
    memo = _parsed.get()
    found = memo.get((text, text_scalars)) if memo is not None else None
    if found is None:
        found = _load(text, text_scalars)
        if memo is not None:
            memo[(text, text_scalars)] = found
    value, problem = found
    if problem:
        problems.add(f"{what} {problem}")
    return value


def _load(text: str, text_scalars: bool) -> tuple[Any, str]:
    from provider.boundedyaml import load

    return load(text, text_scalars)


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
            problems.add(f"{where}: unknown key {str(key)[:40]!r} ({_suggest(str(key), known)})")
            continue
        if canonical in out:
            problems.add(f"{where}: key {canonical!r} is given twice")
            continue
        out[canonical] = value
    return out


def _suggest(key: str, known: tuple[str, ...]) -> str:
    """ "did you mean 'objectName'?" for a near miss; else the known keys."""
    import difflib  # only for a misspelt key

    by_lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(key[:100].lower(), list(by_lower), n=1, cutoff=0.75)
    if close:
        return f"did you mean {by_lower[close[0]]!r}?"
    return f"known: {', '.join(known)}"


def as_text(value: Any) -> str:
    """A scalar YAML value as the string the Go peers would have read."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip() if isinstance(value, str) else str(value)


def yaml_entries(
    text: str, parameter: str, known: tuple[str, ...], needs: str, problems: Problems
) -> list[tuple[str, dict[str, Any]]]:
    """A parameter holding a YAML list of mappings: ``(where, fields)`` per entry.

    Keys are folded to ``known`` (unknown ones reported); an entry that is not
    a mapping is reported as needing ``needs``. Entries count from 1 in messages.
    """
    document = parse_yaml(text, f"parameter {parameter!r}", problems)
    if document is None:
        return []
    if not isinstance(document, list):
        problems.add(f"parameter {parameter!r} must be a YAML list of entries")
        return []
    out: list[tuple[str, dict[str, Any]]] = []
    for index, item in enumerate(document, start=1):
        where = f"parameter {parameter!r}, entry {index}"
        if not isinstance(item, dict):
            problems.add(f"{where}: must be a mapping with {needs}")
            continue
        out.append((where, fold_keys(item, known, where, problems)))
    return out



def object_list(
    params: Mapping[str, str],
    problems: Problems,
    *,
    array: bool = False,
    text_scalars: bool = False,
) -> list[Any]:
    """The entries of the ``objects`` parameter, as each dialect writes it.

    AWS and Vault give a YAML list; Azure a document with ``array:`` (any case)
    holding the list, or (ours) the bare list. ``array`` selects the Azure
    shape. Problems are added with the same wording in every dialect and an
    empty list is returned, so the caller goes on collecting problems.
    """
    shape = "a YAML document with an 'array' of objects" if array else "a YAML list of objects"
    text = params.get("objects")
    if text is None or not text.strip():
        problems.add(f"parameter 'objects' is required ({shape})")
        return []
    before = len(problems)
    doc = parse_yaml(text, "parameter 'objects'", problems, text_scalars=text_scalars)
    if doc is None:
        return []
    items: Any = doc
    if array and isinstance(doc, dict):
        items = next((v for k, v in doc.items() if str(k).lower() == "array"), None)
    if not isinstance(items, list):
        problems.add(
            "parameter 'objects' must hold 'array:' followed by a list of objects"
            if array
            else "parameter 'objects' must be a YAML list"
        )
        return []
    if not items and len(problems) == before:
        problems.add("parameter 'objects' lists no objects")
    return items


def file_mode(
    value: Any, where: str, default: int, problems: Problems, *, integer: bool = False
) -> int:
    """An object's ``filePermission``: an octal string (AWS, Azure) or a YAML integer (Vault).

    Empty or absent is ``default``; so is 0 for the integer form, as in
    vault-csi-provider. A bad value is a problem naming ``where`` and the parameter.
    """
    if value is None or value == "":
        return default
    try:
        if integer:
            return parse_integer_mode(value) or default
        return parse_octal_mode(value if isinstance(value, str) else as_text(value))
    except ValueError as exc:
        problems.add(f"{where}: parameter 'filePermission': {exc}")
        return default


def entry_mode(fields: Mapping[str, Any], where: str, problems: Problems) -> int | None:
    """A ``keysAsFiles`` / ``templates`` entry's ``mode`` (octal string); None when not given."""
    if "mode" not in fields:
        return None
    try:
        return parse_octal_mode(fields["mode"])
    except ValueError as exc:
        problems.add(f"{where}: 'mode' {exc}")
        return None
