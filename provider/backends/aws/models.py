"""botocore's service models, kept for the operations the provider calls only.

A client holds its service's whole API model as parsed JSON, documentation
included: SSM's alone is ~3.3 MiB of the provider's memory, for the two of its
~150 operations a mount calls. The loader here reads the three services'
models without their documentation strings (only botocore's docstrings use
them), then keeps the operations we call and the shapes they reach (input,
output, modeled errors): their requests are serialized, signed and parsed
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

# Every operation the backend calls, per service (provider.backends.aws.backend,
# credentials, pages).
OPERATIONS: Mapping[str, frozenset[str]] = {
    "secretsmanager": frozenset({"GetSecretValue", "ListSecrets"}),
    "ssm": frozenset({"GetParameters", "GetParametersByPath"}),
    "sts": frozenset({"AssumeRoleWithWebIdentity", "AssumeRole"}),
}
# The keys of a shape that name other shapes (structure members, list members, map keys/values).
_REFERENCES = ("member", "key", "value")


def _reached(shapes: Mapping[str, Any], roots: list[str]) -> set[str]:
    seen: set[str] = set()
    todo = [r for r in roots if r in shapes]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        shape = shapes[name]
        refs = [shape[k] for k in _REFERENCES if isinstance(shape.get(k), dict)]
        refs.extend(m for m in shape.get("members", {}).values() if isinstance(m, dict))
        todo.extend(r["shape"] for r in refs if r.get("shape") in shapes)
    return seen


def trim(service: str, model: dict[str, Any]) -> None:
    """Keep, in place, only our operations of ``service`` and the shapes they reach."""
    wanted = OPERATIONS.get(service)
    operations = model.get("operations")
    shapes = model.get("shapes")
    if wanted is None or not isinstance(operations, dict) or not isinstance(shapes, dict):
        return
    if not wanted <= operations.keys() or len(operations) == len(wanted):
        return  # not a model we know, or trimmed already
    roots: list[str] = []
    for name in wanted:
        operation = operations[name]
        refs = [operation.get("input"), operation.get("output"), *operation.get("errors", ())]
        roots.extend(r["shape"] for r in refs if isinstance(r, dict) and "shape" in r)
    kept = _reached(shapes, roots)
    model["operations"] = {k: v for k, v in operations.items() if k in wanted}
    model["shapes"] = {k: v for k, v in shapes.items() if k in kept}


def _undocumented(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json object hook: no ``documentation`` text (a member of that name is a dict: kept)."""
    return {k: v for k, v in pairs if not (k == "documentation" and isinstance(v, str))}


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
    """Reads our services' API models without documentation; other files as botocore does."""

    def load_file(self, file_path: str) -> Any:
        parts = file_path.split(os.sep)
        if len(parts) < 3 or parts[-1] != "service-2" or parts[-3] not in OPERATIONS:
            return super().load_file(file_path)
        payload = _read(file_path)
        if payload is None:
            return None
        return json.loads(payload.decode("utf-8"), object_pairs_hook=_undocumented)


class TrimmedLoader(botocore.loaders.Loader):
    """botocore's loader; the service models of OPERATIONS' services trimmed once loaded.

    The loader caches what it loads: the trimmed model is what stays cached.
    """

    FILE_LOADER_CLASS = _ModelFileLoader

    def load_service_model(
        self, service_name: str, type_name: str, api_version: str | None = None
    ) -> Any:
        model = super().load_service_model(service_name, type_name, api_version)
        if type_name == "service-2" and isinstance(model, dict):
            trim(service_name, model)
        return model


def loader(data_path: str | None) -> TrimmedLoader:
    """As ``botocore.loaders.create_loader`` builds it from the ``data_path`` setting."""
    if data_path is None:
        return TrimmedLoader()
    paths = [os.path.expanduser(os.path.expandvars(p)) for p in data_path.split(os.pathsep)]
    return TrimmedLoader(extra_search_paths=paths)
