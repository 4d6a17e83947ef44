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
from dataclasses import dataclass, field
from typing import Any

import jmespath.exceptions

from provider.backends.aws.config import AwsObject
from provider.backends.base import ObjectVersion, OutputFile
from provider.codes import ErrorCode
from provider.encodings import decode
from provider.errors import InvalidRequest, Unavailable


@dataclass(frozen=True)
class Fetched:
    value: bytes = field(repr=False)
    version: str


def secret_answer(answer: Any, subject: str) -> Fetched:
    """The value and version of a GetSecretValue answer, or Unavailable if it has none."""
    if not isinstance(answer, dict):
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


def parameter_answer(param: dict[str, Any], subject: str) -> Fetched:
    """The value and version of one GetParameters entry, or Unavailable if it has none."""
    value, version = param.get("Value"), param.get("Version")
    if not isinstance(value, str):
        raise _unusable(subject, "GetParameters", "has no Value")
    if isinstance(version, bool) or not isinstance(version, int):
        raise _unusable(subject, "GetParameters", "has no Version")
    return Fetched(value.encode("utf-8"), str(version))


def _unusable(subject: str, operation: str, what: str) -> Unavailable:
    return Unavailable(
        f"{subject}: AWS's {operation} answer {what}; not a usable answer (a proxy or a "
        "fault in between?)"
    )


def render(obj: AwsObject, fetched: Fetched) -> tuple[list[OutputFile], list[ObjectVersion]]:
    try:
        value = decode(fetched.value, obj.encoding)
    except ValueError as exc:
        # The message names the encoding, never the value.
        raise InvalidRequest(
            f"object {obj.object_name!r}: parameter 'objectEncoding': {exc}",
            code=ErrorCode.InvalidSecretFormat,
        ) from None
    files = [OutputFile(obj.file_name, obj.mode, value, obj.object_name)]
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
