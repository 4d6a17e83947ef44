"""botocore's service models, kept for the operations the provider calls only.

A client holds its service's whole API model as parsed JSON, documentation
included: SSM's alone is ~3.3 MiB of the provider's memory, for the two of its
~150 operations a mount calls. The loader here reads the three services'
models keeping the operations we call and the shapes they reach (input,
output, modeled errors), without documentation strings (only botocore's
docstrings use them): their requests are serialized, signed and parsed
exactly as before, their modeled errors keep their fields. A model that lacks
one of our operations (a user's own model files) keeps all of them.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Mapping
from typing import Any

import botocore.loaders

from provider.backends.aws import jsonwalk

# Every operation the backend calls, per service (provider.backends.aws.backend,
# credentials, pages).
OPERATIONS: Mapping[str, frozenset[str]] = {
    "secretsmanager": frozenset({"GetSecretValue", "ListSecrets"}),
    "ssm": frozenset({"GetParameters", "GetParametersByPath"}),
    "sts": frozenset({"AssumeRoleWithWebIdentity", "AssumeRole"}),
}
# The keys of a shape that name other shapes (structure members, list members, map keys/values).
_REFERENCES = ("member", "key", "value")


def _references(shape: Mapping[str, Any]) -> list[str]:
    refs = [shape[k] for k in _REFERENCES if isinstance(shape.get(k), dict)]
    refs.extend(m for m in shape.get("members", {}).values() if isinstance(m, dict))
    return [r["shape"] for r in refs if isinstance(r.get("shape"), str)]


def _reached(references: Mapping[str, list[str]], roots: list[str]) -> set[str]:
    seen: set[str] = set()
    todo = [r for r in roots if r in references]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(r for r in references[name] if r in references)
    return seen


def _undocumented(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json object hook: no ``documentation`` text (a member of that name is a dict: kept)."""
    return {k: v for k, v in pairs if not (k == "documentation" and isinstance(v, str))}


_DECODER = json.JSONDecoder(object_pairs_hook=_undocumented)


def read_model(service: str, text: str) -> dict[str, Any]:
    """A service-2.json of OPERATIONS, with our operations and the shapes they reach only.

    Walked member by member (jsonwalk): an operation is kept or dropped as it
    is read; of each shape only the names it refers to and where it lies are
    noted, and the shapes reached from our operations are read at the end. A
    model lacking one of our operations is read whole (documentation aside).
    Raises ValueError or IndexError where the text is not JSON.
    """
    wanted = OPERATIONS[service]
    where: dict[str, tuple[int, int]] = {}
    references: dict[str, list[str]] = {}

    def decoded(_key: str, text: str, at: int) -> tuple[object, int]:
        found, end = _DECODER.raw_decode(text, at)
        return found, end

    def operation(key: str, text: str, at: int) -> tuple[object, int]:
        found, end = decoded(key, text, at)
        return (found if key in wanted else jsonwalk.SKIP), end

    def shape(key: str, text: str, at: int) -> tuple[object, int]:
        found, end = decoded(key, text, at)
        where[key] = (at, end)
        references[key] = _references(found) if isinstance(found, dict) else []
        return jsonwalk.SKIP, end

    def member(key: str, text: str, at: int) -> tuple[object, int]:
        if key == "operations":
            return jsonwalk.walk_object(text, at, operation)
        if key == "shapes":
            return jsonwalk.walk_object(text, at, shape)
        found, end = decoded(key, text, at)
        return (jsonwalk.SKIP if key == "documentation" else found), end

    model: dict[str, Any] = jsonwalk.walk(text, member)
    operations = model.get("operations")
    if not isinstance(operations, dict) or operations.keys() != wanted:
        whole: dict[str, Any] = _DECODER.decode(text)  # not the model we know: all kept
        return whole
    roots: list[str] = []
    for op in operations.values():
        refs = [op.get("input"), op.get("output"), *op.get("errors", ())]
        roots.extend(r["shape"] for r in refs if isinstance(r, dict) and "shape" in r)
    kept = _reached(references, roots)
    model["shapes"] = {
        name: _DECODER.decode(text[start:end])
        for name, (start, end) in where.items()
        if name in kept
    }
    return model


def _read(file_path: str) -> bytes | None:
    """The file as botocore looks for it: ``.json``, else ``.json.gz``."""
    if os.path.isfile(file_path + ".json"):
        with open(file_path + ".json", "rb") as fh:
            return fh.read()
    if os.path.isfile(file_path + ".json.gz"):
        with gzip.open(file_path + ".json.gz", "rb") as gz:
            return gz.read()
    return None


class _ModelFileLoader(botocore.loaders.JSONFileLoader):
    """Reads our services' API models trimmed (read_model); other files as botocore does."""

    def load_file(self, file_path: str) -> Any:
        parts = file_path.split(os.sep)
        if len(parts) < 3 or parts[-1] != "service-2" or parts[-3] not in OPERATIONS:
            return super().load_file(file_path)
        payload = _read(file_path)
        if payload is None:
            return None
        text = payload.decode("utf-8")
        del payload
        try:
            return read_model(parts[-3], text)
        except (ValueError, IndexError):
            return json.loads(text)  # not JSON as expected: botocore's reading and error


class TrimmedLoader(botocore.loaders.Loader):
    """botocore's loader; the service models of OPERATIONS' services read trimmed."""

    FILE_LOADER_CLASS = _ModelFileLoader


def loader(data_path: str | None) -> TrimmedLoader:
    """As ``botocore.loaders.create_loader`` builds it from the ``data_path`` setting."""
    if data_path is None:
        return TrimmedLoader()
    paths = [os.path.expanduser(os.path.expandvars(p)) for p in data_path.split(os.pathsep)]
    return TrimmedLoader(extra_search_paths=paths)
