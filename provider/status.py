"""The one place where provider errors become gRPC status codes.

Each error's status is its code's (``provider.codes``). The driver retries only
UNAVAILABLE, and shows the status message to the user as the pod's FailedMount
event; so the code must be right and the message must say what to fix, with no
secrets in it (it is redacted here once more).
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc

from provider.codes import ErrorCode
from provider.errors import MAX_MESSAGE, InvalidParameters, ProviderError, clip, summarize
from provider.redaction import redact

# Any status message, whatever raised it: well under gRPC's 8 KiB metadata limit.
MAX_STATUS = MAX_MESSAGE + 512

INTERNAL_MESSAGE = "Internal: unexpected provider error (details in the provider's logs)"


def status_code(error: ProviderError) -> grpc.StatusCode:
    """The status of the error's code (``provider.codes``: one table for code and docs)."""
    return error.code.status


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


def error_code(error: BaseException) -> ErrorCode:
    """The short stable code of an error, for logs and metric labels."""
    return error.code if isinstance(error, ProviderError) else ErrorCode.Internal
