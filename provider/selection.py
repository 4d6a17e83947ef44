"""Which backend serves a SecretProviderClass (parameters.md, "Choosing the backend").

In order: our ``backend`` parameter; the socket name we were reached by when it
is a backend name (drop-in for an existing provider); an unambiguous key of one
dialect. Anything else is an error that lists the three ways to say it.
"""

from __future__ import annotations

from collections.abc import Mapping

from provider.backends import BACKEND_NAMES
from provider.dialect import parse_yaml
from provider.errors import InvalidParameters, Problems

BACKEND_PARAMETER = "backend"


def _looks_like_aws(objects_text: str, problems: Problems) -> bool:
    # Through the dialect's bounded parser: inside the pipeline's parse_once
    # block the AWS plan then reuses this very document instead of parsing it again.
    objects = parse_yaml(objects_text, "parameter 'objects'", problems)
    if not isinstance(objects, list):
        return False
    for item in objects:
        if not isinstance(item, dict):
            continue
        for key, value in item.items():
            if not isinstance(key, str) or not isinstance(value, str):
                continue
            lowered = key.lower()
            if lowered == "objecttype" and value.strip().lower() in (
                "secretsmanager",
                "ssmparameter",
            ):
                return True
            if lowered == "objectname" and value.strip().startswith("arn:aws"):
                return True
    return False


def choose_backend(attributes: Mapping[str, str], served_name: str) -> str:
    explicit = attributes.get(BACKEND_PARAMETER)
    if explicit is not None:
        value = explicit.strip().lower()
        if value not in BACKEND_NAMES:
            raise InvalidParameters(
                [f"parameter 'backend': {explicit[:40]!r} is not one of {', '.join(BACKEND_NAMES)}"]
            )
        return value
    if served_name in BACKEND_NAMES:
        return served_name
    if "keyvaultName" in attributes:
        return "azure"
    if "roleName" in attributes or "vaultAddress" in attributes:
        return "vault"
    problems = Problems()
    if _looks_like_aws(attributes.get("objects", ""), problems):
        return "aws"
    raise InvalidParameters(
        [
            *problems,  # an unreadable 'objects' is the likelier cause: named first
            "cannot tell which backend this SecretProviderClass is for: set parameter "
            "'backend' to aws, azure or vault; or serve this provider under that name "
            "(--also-serve) and set spec.provider to it; or use a dialect key "
            "(keyvaultName for azure, roleName/vaultAddress for vault, objectType "
            "secretsmanager/ssmparameter or an arn:aws: objectName for aws)"
        ]
    )
