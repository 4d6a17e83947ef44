"""The driver's rules for file paths, checked before we answer.

The driver rejects the whole mount when any ``File.path`` breaks a rule (see
driver-contract.md, "What the driver does with the response"). Checking here
first lets us answer INVALID_ARGUMENT naming the object at fault instead of an
opaque driver error, and guarantees nothing we return can escape the volume.
"""

from __future__ import annotations

from collections.abc import Sequence

from provider.errors import InvalidPath

MAX_PATH_BYTES = 4096
MAX_ELEMENT_BYTES = 255


def path_problem(path: str) -> str | None:
    """Why the driver would reject ``path``, or None when it is acceptable."""
    if not path:
        return "is empty"
    if "\x00" in path:
        return "contains a NUL byte"
    if path.startswith("/"):
        return "is absolute"
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        return f"is longer than {MAX_PATH_BYTES} bytes"
    elements = path.split("/")
    for element in elements:
        if element == "..":
            return "contains a '..' element"
        if len(element.encode("utf-8", "surrogatepass")) > MAX_ELEMENT_BYTES:
            return f"has an element longer than {MAX_ELEMENT_BYTES} bytes"
    if elements[0].startswith(".."):
        # `..data` and `..<timestamp>` belong to the driver's atomic writer.
        return "starts with '..' (reserved for the driver's writer)"
    if any(e in ("", ".") for e in elements):
        return "is not clean (no './', '//' or trailing '/')"
    return None


def check_paths(files: Sequence[tuple[str, str]]) -> None:
    """Check ``(path, object)`` pairs; raise one error listing every bad path.

    Also rejects a file that is another file's directory (``a`` beside ``a/b``),
    which the driver refuses; exact duplicates are reported too, since they
    would silently overwrite each other.
    """
    problems: list[str] = []
    owner: dict[str, str] = {}
    for path, obj in files:
        why = path_problem(path)
        if why is not None:
            shown = path if len(path) <= 80 else path[:77] + "..."
            problems.append(f"object {obj!r}: file path {shown!r} {why}")
            continue
        if path in owner:
            problems.append(
                f"object {obj!r}: file path {path!r} is also written by object {owner[path]!r}"
            )
            continue
        owner[path] = obj
    for path, obj in owner.items():
        parts = path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in owner:
                problems.append(
                    f"object {obj!r}: file path {path!r} needs {parent!r} to be a directory, "
                    f"but object {owner[parent]!r} writes a file there"
                )
    if problems:
        raise InvalidPath("; ".join(problems))
