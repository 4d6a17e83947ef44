"""Files and object versions for one fetched AWS object.

The object's own file, plus one file per ``jmesPath`` entry holding the
expression's result over the JSON secret. Object version ids are the file
names (as the AWS provider reports them); jmesPath files carry their parent's
version.

An answer is read only when it has what the API promises (a value and a
version): botocore turns an empty, cut or non-JSON body into ``{}`` without
complaint, and that must never become an empty file. Such an answer is
Unavailable (retried), and its content is never quoted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import jmespath.exceptions

from provider import listing
from provider.backends.aws.credentials import Answer
from provider.backends.aws.objects import AwsObject, Selector
from provider.backends.base import ObjectVersion, OutputFile
from provider.codes import ErrorCode
from provider.encodings import decode
from provider.errors import InvalidRequest, NotFound, Unavailable


@dataclass(frozen=True)
class Fetched:
    value: bytes = field(repr=False)
    version: str


# A selection's entries: (name, value), sorted by name.
Matches = tuple[tuple[str, Fetched], ...]


def secret_answer(answer: Answer, subject: str) -> Fetched:
    """The value and version of a GetSecretValue answer, or Unavailable if it has none."""
    if not isinstance(answer, Mapping):
        raise _unusable(subject, "GetSecretValue", "is not an object")
    version = answer.get("VersionId")
    if not isinstance(version, str) or not version:
        raise _unusable(subject, "GetSecretValue", "has no VersionId")
    text, binary = answer.get("SecretString"), answer.get("SecretBinary")
    if isinstance(text, str):
        return Fetched(text.encode("utf-8"), version)
    if isinstance(binary, bytes | bytearray):
        return Fetched(bytes(binary), version)
    raise _unusable(subject, "GetSecretValue", "has neither SecretString nor SecretBinary")


def parameter_answer(param: Answer, subject: str) -> Fetched:
    """The value and version of one GetParameters entry, or Unavailable if it has none."""
    value, version = param.get("Value"), param.get("Version")
    if not isinstance(value, str):
        raise _unusable(subject, "GetParameters", "has no Value")
    if isinstance(version, bool) or not isinstance(version, int):
        raise _unusable(subject, "GetParameters", "has no Version")
    return Fetched(value.encode("utf-8"), str(version))


def ssm_name(sel: Selector) -> str:
    """GetParameters selector syntax: ``name:version`` or ``name:label``."""
    if sel.version:
        return f"{sel.name}:{sel.version}"
    if sel.label:
        return f"{sel.name}:{sel.label}"
    return sel.name


def parameters_answer(
    answer: Answer, selectors: Sequence[tuple[AwsObject, Selector]], where: str
) -> dict[int, Fetched]:
    """Each object's value in one GetParameters answer (keyed by ``id(object)``).

    A name SSM lists as invalid is NotFound; an answer that lists a name
    neither as found nor as invalid is not a usable answer (Unavailable).
    """
    names = [ssm_name(sel) for _, sel in selectors]
    invalid = {n for n in _list(answer.get("InvalidParameters")) if isinstance(n, str)}
    missing = [o.object_name for (o, _), n in zip(selectors, names, strict=True) if n in invalid]
    if missing:
        raise NotFound(
            f"SSM parameters not found in {where} (or version/label not found): "
            + ", ".join(repr(m) for m in missing)
        )
    found = [p for p in _list(answer.get("Parameters")) if isinstance(p, Mapping)]
    out: dict[int, Fetched] = {}
    for obj, sel in selectors:
        subject = f"object {obj.object_name!r} (parameter {sel.name!r} in {where})"
        param = _match_parameter(found, sel)
        if param is None:
            # SSM lists every name it was asked for, found or invalid:
            # an answer that lists neither is not a usable answer.
            raise Unavailable(
                f"{subject}: AWS's GetParameters answer lists the parameter neither "
                "as found nor as invalid; not a usable answer"
            )
        out[id(obj)] = parameter_answer(param, subject)
    return out


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _match_parameter(found: list[Mapping[str, object]], sel: Selector) -> Answer | None:
    """The answer for ``sel``. Batches never hold one name twice (see ``backend.batches``)."""
    for param in found:
        name = str(param.get("Name", ""))
        if name == sel.name or (sel.name.startswith("arn:") and sel.name.endswith(name)):
            return param
        if param.get("ARN") == sel.name:
            return param
    return None


def match_path(obj: AwsObject, name: str) -> str:
    """The file of match ``name`` of a selection: relative to its path, under its alias."""
    assert obj.select is not None
    relative = listing.relative_name(obj.select, name, f"object {obj.object_name!r}")
    return f"{obj.file_name}/{relative}" if obj.file_name else relative


def _selected(obj: AwsObject, matches: Matches) -> tuple[list[OutputFile], list[ObjectVersion]]:
    files: list[OutputFile] = []
    versions: list[ObjectVersion] = []
    for name, fetched in matches:
        path = match_path(obj, name)
        files.append(OutputFile(path, obj.mode, _decoded(obj, fetched), obj.object_name))
        # Each match its own version: rotation sees one added, removed or changed.
        versions.append(ObjectVersion(path, fetched.version))
    return files, versions


def _decoded(obj: AwsObject, fetched: Fetched) -> bytes:
    try:
        return decode(fetched.value, obj.encoding)
    except ValueError as exc:
        # The message names the encoding, never the value.
        raise InvalidRequest(
            f"object {obj.object_name!r}: parameter 'objectEncoding': {exc}",
            code=ErrorCode.InvalidSecretFormat,
        ) from None


def _unusable(subject: str, operation: str, what: str) -> Unavailable:
    return Unavailable(
        f"{subject}: AWS's {operation} answer {what}; not a usable answer (a proxy or a "
        "fault in between?)"
    )


def render(
    obj: AwsObject, fetched: Fetched | Matches
) -> tuple[list[OutputFile], list[ObjectVersion]]:
    """The files and versions of one object: a named entry, or each match of a ``select``."""
    if not isinstance(fetched, Fetched):
        return _selected(obj, fetched)
    files = [OutputFile(obj.file_name, obj.mode, _decoded(obj, fetched), obj.object_name)]
    versions = [ObjectVersion(obj.file_name, fetched.version)]
    if not obj.jmes:
        return files, versions
    try:
        document = json.loads(fetched.value)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest(
            f"object {obj.object_name!r}: parameter 'jmesPath' needs a JSON secret, "
            "but the value is not valid JSON",
            code=ErrorCode.InvalidSecretFormat,
        ) from None
    for entry in obj.jmes:
        where = (
            f"object {obj.object_name!r}: jmesPath {entry.expression!r} "
            f"(objectAlias {entry.file_name!r})"
        )
        try:
            result = entry.compiled.search(document)
        except jmespath.exceptions.JMESPathTypeError as exc:
            # Its text quotes the offending value, which is secret content:
            # name the function and the types only.
            expected = " or ".join(exc.expected_types)
            raise InvalidRequest(
                f"{where} cannot be evaluated over the secret: {exc.function_name}() "
                f"expects {expected}, got {exc.actual_type}",
                code=ErrorCode.InvalidSecretFormat,
            ) from None
        except jmespath.exceptions.JMESPathError as exc:  # e.g. an unknown function
            raise InvalidRequest(
                f"{where} cannot be evaluated over the secret ({type(exc).__name__})",
                code=ErrorCode.InvalidSecretFormat,
            ) from None
        if result is None:
            raise InvalidRequest(
                f"{where} matches nothing in the secret", code=ErrorCode.InvalidSecretFormat
            )
        # The AWS provider insists on a string result; other JSON values are
        # written as JSON text rather than failing the mount.
        data = result.encode("utf-8") if isinstance(result, str) else json.dumps(result).encode()
        files.append(OutputFile(entry.file_name, entry.mode, data, obj.object_name))
        versions.append(ObjectVersion(entry.file_name, fetched.version))
    return files, versions
