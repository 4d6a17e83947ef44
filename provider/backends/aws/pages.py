"""One page of a ``select`` listing: SSM GetParametersByPath or Secrets Manager ListSecrets.

Each function is one SDK call and the check of its answer, run as one
``ctx.call`` (an unusable answer is retried like a 503). The backend pages
through them and stops as soon as the selection is over its bound.

Secrets Manager's ``tag-key`` and ``tag-value`` filters match independently
(a secret tagged ``team=prod, env=pay`` passes ``team=pay``), and its
``name`` filter is a case-insensitive prefix: both only narrow the listing,
and every listed secret is checked here for its exact name prefix and each
exact tag pair.
"""

from __future__ import annotations

from collections.abc import Mapping

from provider.backends.aws.credentials import Answer, AwsClient
from provider.backends.aws.render import Fetched, parameter_answer
from provider.errors import Unavailable
from provider.listing import Select

# SSM answers at most 10 parameters a page, Secrets Manager 100 secrets.
SSM_PAGE = 10
SECRETS_PAGE = 100
# ListSecrets takes at most 10 filters: the name, then tag filters up to that.
MAX_FILTERS = 10


def parameters_page(
    client: AwsClient, select: Select, token: str, subject: str
) -> tuple[list[tuple[str, Fetched]], str]:
    """One GetParametersByPath page: each parameter's name and value, and the next token."""
    kwargs: dict[str, object] = {
        "Path": select.path,
        "Recursive": select.recursive,
        "WithDecryption": True,
        "MaxResults": SSM_PAGE,
    }
    if token:
        kwargs["NextToken"] = token
    answer = client.get_parameters_by_path(**kwargs)
    found: list[tuple[str, Fetched]] = []
    for param in _entries(answer, "Parameters", subject, "GetParametersByPath"):
        name = param.get("Name")
        if not isinstance(name, str) or not name:
            raise _unusable(subject, "GetParametersByPath", "lists a parameter without a Name")
        found.append((name, parameter_answer(param, f"{subject} (parameter {name!r})")))
    return found, _token(answer)


def secrets_page(
    client: AwsClient, select: Select, token: str, subject: str
) -> tuple[list[str], str]:
    """One ListSecrets page: the names that match ``select`` exactly, and the next token."""
    filters: list[dict[str, object]] = [{"Key": "name", "Values": [select.path]}]
    for key, value in select.tags:
        filters += [{"Key": "tag-key", "Values": [key]}, {"Key": "tag-value", "Values": [value]}]
    kwargs: dict[str, object] = {"Filters": filters[:MAX_FILTERS], "MaxResults": SECRETS_PAGE}
    if token:
        kwargs["NextToken"] = token
    answer = client.list_secrets(**kwargs)
    names: list[str] = []
    for secret in _entries(answer, "SecretList", subject, "ListSecrets"):
        name = secret.get("Name")
        if not isinstance(name, str) or not name:
            raise _unusable(subject, "ListSecrets", "lists a secret without a Name")
        if name.startswith(select.path) and has_tags(secret, select.tags):
            names.append(name)
    return names, _token(answer)


def has_tags(secret: Mapping[str, object], wanted: tuple[tuple[str, str], ...]) -> bool:
    """Whether the listed secret carries every wanted (key, value) pair exactly."""
    tags = secret.get("Tags")
    pairs = {
        (t.get("Key"), t.get("Value"))
        for t in (tags if isinstance(tags, list) else [])
        if isinstance(t, Mapping)
    }
    return all(pair in pairs for pair in wanted)


def _entries(
    answer: Answer, field: str, subject: str, operation: str
) -> list[Mapping[str, object]]:
    items = answer.get(field)
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise _unusable(subject, operation, f"has no list of {field}")
    return items


def _token(answer: Answer) -> str:
    token = answer.get("NextToken")
    return token if isinstance(token, str) else ""


def _unusable(subject: str, operation: str, what: str) -> Unavailable:
    return Unavailable(f"{subject}: AWS's {operation} answer {what}; not a usable answer")
