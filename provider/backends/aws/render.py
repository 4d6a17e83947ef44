"""Files and object versions for one fetched AWS object.

The object's own file, plus one file per ``jmesPath`` entry holding the
expression's result over the JSON secret. Object version ids are the file
names (as the AWS provider reports them); jmesPath files carry their parent's
version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

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
        result = entry.compiled.search(document)
        if result is None:
            raise InvalidRequest(
                f"object {obj.object_name!r}: jmesPath {entry.expression!r} "
                f"(objectAlias {entry.file_name!r}) matches nothing in the secret",
                code="InvalidSecretFormat",
            )
        # The AWS provider insists on a string result; other JSON values are
        # written as JSON text rather than failing the mount.
        data = result.encode("utf-8") if isinstance(result, str) else json.dumps(result).encode()
        files.append(OutputFile(entry.file_name, entry.mode, data, obj.object_name))
        versions.append(ObjectVersion(entry.file_name, fetched.version))
    return files, versions
