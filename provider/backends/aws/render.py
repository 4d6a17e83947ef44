"""Files and object versions for one fetched AWS object.

The object's own file, plus one file per ``jmesPath`` entry holding the
expression's result over the JSON secret. Object version ids are the file
names (as the AWS provider reports them); jmesPath files carry their parent's
version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import jmespath.exceptions

from provider.backends.aws.config import AwsObject
from provider.backends.base import ObjectVersion, OutputFile
from provider.errors import InvalidRequest


@dataclass(frozen=True)
class Fetched:
    value: bytes = field(repr=False)
    version: str


def render(obj: AwsObject, fetched: Fetched) -> tuple[list[OutputFile], list[ObjectVersion]]:
    files = [OutputFile(obj.file_name, obj.mode, fetched.value, obj.object_name)]
    versions = [ObjectVersion(obj.file_name, fetched.version)]
    if not obj.jmes:
        return files, versions
    try:
        document = json.loads(fetched.value)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest(
            f"object {obj.object_name!r}: parameter 'jmesPath' needs a JSON secret, "
            "but the value is not valid JSON",
            code="InvalidSecretFormat",
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
                code="InvalidSecretFormat",
            ) from None
        except jmespath.exceptions.JMESPathError as exc:  # e.g. an unknown function
            raise InvalidRequest(
                f"{where} cannot be evaluated over the secret ({type(exc).__name__})",
                code="InvalidSecretFormat",
            ) from None
        if result is None:
            raise InvalidRequest(
                f"{where} matches nothing in the secret", code="InvalidSecretFormat"
            )
        # The AWS provider insists on a string result; other JSON values are
        # written as JSON text rather than failing the mount.
        data = result.encode("utf-8") if isinstance(result, str) else json.dumps(result).encode()
        files.append(OutputFile(entry.file_name, entry.mode, data, obj.object_name))
        versions.append(ObjectVersion(entry.file_name, fetched.version))
    return files, versions
