"""The one place where provider errors become gRPC status codes.

The driver retries only UNAVAILABLE, and shows the status message to the user
as the pod's FailedMount event; so the code must be right and the message must
say what to fix, with no secrets in it (it is redacted here once more).
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc

from provider.errors import (
    MAX_MESSAGE,
    DeadlineExceeded,
    InvalidParameters,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    ProviderError,
    Unavailable,
    clip,
    summarize,
)
from provider.redaction import redact

_CODES: tuple[tuple[type[ProviderError], grpc.StatusCode], ...] = (
    (InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
    (DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
)

# Any status message, whatever raised it: well under gRPC's 8 KiB metadata limit.
MAX_STATUS = MAX_MESSAGE + 512

INTERNAL_MESSAGE = "Internal: unexpected provider error (details in the provider's logs)"


def status_code(error: ProviderError) -> grpc.StatusCode:
    for cls, code in _CODES:
        if isinstance(error, cls):
            return code
    return grpc.StatusCode.INTERNAL


def to_status(error: BaseException, secrets: Iterable[str] = ()) -> tuple[grpc.StatusCode, str]:
    """Status code and user-facing message for any exception of a Mount."""
    if isinstance(error, InvalidParameters):
        # Redacted before being cut: a clipped secret could not be found any more.
        secrets = list(secrets)
        problems = [redact(p, secrets) for p in error.problems]
        return status_code(error), clip(f"{error.code}: {summarize(problems)}", MAX_STATUS)
    if isinstance(error, ProviderError):
        return status_code(error), clip(redact(str(error), secrets), MAX_STATUS)
    # Not ours: a bug. Its text may hold anything, so it stays in the logs.
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE


def error_code(error: BaseException) -> str:
    """The short stable code of an error, for logs and metric labels."""
    return error.code if isinstance(error, ProviderError) else "Internal"
