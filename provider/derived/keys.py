"""``keysAsFiles``: one file per top-level key of a JSON object.

Asked for by every peer's users for years (AWS provider #46, vault-csi-provider
#114/#192/#203, Azure provider #885): applications read ``db/username`` and
``db/password`` as files, not a JSON document. A key that is not a valid file
name is an error that names it, never a silent rename (two keys could collapse
into one file). Values that are not strings are written as JSON.

    keysAsFiles: |
      - file: db-creds        # a file the class mounts, holding a JSON object
        directory: db         # optional: the files go under db/
        prefix: DB_           # optional: ... named DB_<key>
        path: data.data       # optional: split the object at this dotted path
                              #   (a Vault KV v2 file without secretKey: data.data)
        keys: [username]      # optional: only these keys (each must exist)
        mode: "0400"          # optional: default, the source file's mode
        keepFile: false       # optional: default true, the JSON file stays too
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from provider.backends.base import OutputFile
from provider.codes import ErrorCode
from provider.dialect import as_text, entry_mode, parse_bool, yaml_entries
from provider.errors import InvalidParameters, InvalidRequest, Problems
from provider.paths import path_problem

KEYS_PARAMETER = "keysAsFiles"
_FIELDS = ("file", "path", "directory", "prefix", "keys", "mode", "keepFile")
# Keys (and listed names) are shown in messages only this long.
_SHOWN = 60


@dataclass(frozen=True)
class KeysRule:
    file: str
    path: tuple[str, ...]
    directory: str
    prefix: str
    keys: tuple[str, ...] | None
    mode: int | None
    keep_file: bool

    @property
    def where(self) -> str:
        return f"parameter {KEYS_PARAMETER!r}, file {self.file!r}"


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "...")


def parse_keys(text: str, problems: Problems) -> list[KeysRule]:
    if not text.strip():
        return []
    rules: list[KeysRule] = []
    for where, fields in yaml_entries(text, KEYS_PARAMETER, _FIELDS, "at least 'file'", problems):
        file = as_text(fields.get("file"))
        if not file:
            problems.add(f"{where}: 'file' is required (the file of a JSON object to split)")
            continue
        path = tuple(p for p in as_text(fields.get("path")).split(".") if p)
        directory = as_text(fields.get("directory")).strip("/")
        if directory and path_problem(directory) is not None:
            problems.add(f"{where}: 'directory' {_shown(directory)} {path_problem(directory)}")
        prefix = as_text(fields.get("prefix"))
        if "/" in prefix:
            problems.add(f"{where}: 'prefix' must not contain '/' (use 'directory')")
        keys: tuple[str, ...] | None = None
        if "keys" in fields:
            raw = fields["keys"]
            if not isinstance(raw, list) or not all(isinstance(k, str) for k in raw):
                problems.add(f"{where}: 'keys' must be a list of key names")
            else:
                keys = tuple(dict.fromkeys(raw))
        mode = entry_mode(fields, where, problems)
        keep = parse_bool(
            {"keepFile": as_text(fields.get("keepFile", "true"))},
            "keepFile",
            problems,
            default=True,
        )
        rules.append(KeysRule(file, path, directory, prefix, keys, mode, keep))
    return rules


def _key_path(rule: KeysRule, key: str) -> str:
    name = rule.prefix + key
    if not key or "/" in key or name in (".", "..") or path_problem(name) is not None:
        raise InvalidParameters(
            [
                f"{rule.where}: key {_shown(key)} is not a valid file name "
                "(empty, '/', '.', '..' or over 255 bytes); use 'keys' to leave it out"
            ]
        )
    return f"{rule.directory}/{name}" if rule.directory else name


def _value_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def dig(value: object, steps: Sequence[str]) -> tuple[object, int]:
    """Walk ``steps`` into nested JSON objects: (where the walk stopped, steps taken).

    Fewer steps taken than given means ``steps[taken]`` is not a key there (also
    used by the Vault backend for a dotted ``secretKey``).
    """
    for taken, step in enumerate(steps):
        if not isinstance(value, dict) or step not in value:
            return value, taken
        value = value[step]
    return value, len(steps)


def _json_object(source: OutputFile, rule: KeysRule) -> dict[str, Any]:
    try:
        value = json.loads(source.contents)
    except (ValueError, RecursionError):
        # Never quote the contents: they are the secret.
        raise InvalidRequest(
            f"{rule.where}: the file's contents are not JSON", code=ErrorCode.InvalidSecretFormat
        ) from None
    value, taken = dig(value, rule.path)
    if taken < len(rule.path):
        raise InvalidParameters(
            [f"{rule.where}: 'path' {'.'.join(rule.path[:taken + 1])!r} is not in the JSON object"]
        )
    if not isinstance(value, dict):
        raise InvalidRequest(
            f"{rule.where}: the file holds JSON {type(value).__name__}, not an object",
            code=ErrorCode.InvalidSecretFormat,
        )
    return value


def apply_keys(rules: tuple[KeysRule, ...], files: list[OutputFile]) -> list[OutputFile]:
    by_path = {f.path: f for f in files}
    dropped: set[str] = set()
    added: list[OutputFile] = []
    for rule in rules:
        source = by_path.get(rule.file)
        if source is None:
            mounted = ", ".join(_shown(p) for p in sorted(by_path)[:10])
            raise InvalidParameters(
                [f"{rule.where}: the class mounts no such file (its files: {mounted})"]
            )
        value = _json_object(source, rule)
        if rule.keys is not None:
            missing = [k for k in rule.keys if k not in value]
            if missing:
                raise InvalidParameters(
                    [
                        f"{rule.where}: the JSON object has no key "
                        + ", ".join(_shown(k) for k in missing[:5])
                    ]
                )
            value = {k: value[k] for k in rule.keys}
        mode = rule.mode if rule.mode is not None else source.mode
        for key, item in value.items():
            added.append(OutputFile(_key_path(rule, key), mode, _value_bytes(item), source.source))
        if not rule.keep_file:
            dropped.add(rule.file)
    return [f for f in files if f.path not in dropped] + added
