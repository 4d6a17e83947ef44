"""azure-core / azure-identity / msal exceptions -> the provider's error tree, in one function.

Only the VM managed identity still goes through azure-identity; ``errors``
imports this module when one of these exceptions arrives (never on a node
that does not use the SDK).

Every exception class of ``azure.core.exceptions`` and ``azure.identity`` maps
to the most specific provider error (a test walks both modules and fails if
one is left to the generic fallback). msal reports failures as answers that
azure-identity raises as ``ClientAuthenticationError``, and its own few
exceptions derive from ``ValueError``/``RuntimeError``, mapped here too.

Messages are quoted as ``errors`` quotes them (shortened, redacted).
"""

from __future__ import annotations

import json

import azure.core.exceptions as ax
import azure.identity as ai

from provider.backends.azure.errors import PERMISSIONS
from provider.codes import ErrorCode
from provider.errors import (
    InvalidParameters,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    ProviderError,
    Unavailable,
    quote_backend_message,
)
from provider.retry import parse_retry_after


def _status(exc: BaseException) -> int:
    status = getattr(exc, "status_code", None)
    if status is None:
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
    try:
        return int(status or 0)
    except (TypeError, ValueError):
        return 0


def retry_after(exc: BaseException) -> float | None:
    """Seconds from a Retry-After header (delta seconds or an HTTP-date)."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    value = headers.get("Retry-After") or headers.get("retry-after")
    return parse_retry_after(value if isinstance(value, str) else None)


def _said(exc: BaseException) -> str:
    """The service's own words: Key Vault's error message or AAD's description."""
    try:
        error = getattr(exc, "error", None)
        message = getattr(error, "message", None) if error is not None else None
        text = str(message or getattr(exc, "message", None) or exc)
    except Exception:  # a half-built SDK exception must not break the translation
        text = type(exc).__name__
    # azure-core prefixes "(Code) " and appends "Code: ...\nMessage: ..."; keep the first line.
    return quote_backend_message(text.splitlines()[0] if text else "")


# How azure-identity words a token answer that is neither a token nor an error
# (its msal-based credentials; "Azure Active Directory" in older releases).
_NO_TOKEN_ANSWERS = (
    "Unexpected response from Microsoft Entra ID",
    "No response content from Microsoft Entra ID",
    "Unexpected response from Azure Active Directory",
    "No response content from Azure Active Directory",
)


def _no_token_no_error(exc: BaseException) -> bool:
    message = str(getattr(exc, "message", "") or "")
    return message.startswith(_NO_TOKEN_ANSWERS)


def translate(exc: BaseException, *, subject: str, operation: str) -> ProviderError:
    """The provider error for ``exc`` raised by ``operation`` while reading ``subject``."""
    if isinstance(exc, ProviderError):
        return exc
    status = _status(exc)
    said = _said(exc)
    code = getattr(getattr(exc, "error", None), "code", None)
    detail = " ".join(str(x) for x in (f"HTTP {status}" if status else "", code or "") if x)
    head = f"{subject}: {operation} failed" + (f" ({detail})" if detail else "")
    text = f"{head}: {said}" if said else head
    if status == 403 and operation in PERMISSIONS:
        text = f"{text}; {operation} needs {PERMISSIONS[operation]}"
    answered = _from_answer(exc, status, head, text)
    if answered is not None:
        return answered
    return _from_fault(exc, f"{subject}: {operation}", said, text)


def _from_answer(exc: BaseException, status: int, head: str, text: str) -> ProviderError | None:
    """What Key Vault's or Azure AD's answer (its status, or its error) says; None if none."""
    # Transient first: a throttled or failing token endpoint is not a denial.
    if status == 429:
        return Unavailable(text, code=ErrorCode.Throttled, retry_after=retry_after(exc))
    if status >= 500:
        return Unavailable(text, retry_after=retry_after(exc))
    if isinstance(exc, ax.ResourceNotFoundError) or status == 404:
        return NotFound(text)
    if isinstance(exc, ai.CredentialUnavailableError):
        # No managed identity endpoint answered (or none is configured).
        return Unavailable(text, code=ErrorCode.IdentityUnavailable)
    if isinstance(exc, ax.ClientAuthenticationError) and _no_token_no_error(exc):
        # Azure AD answered, but neither a token nor an error (`200 {}`, a 5xx
        # body without AADSTS code: a proxy or a fault in between): transient,
        # never a denial. Its content is not quoted: it may hold a token.
        return Unavailable(
            f"{head}: Azure AD's token answer holds neither a token nor an error; "
            "not a usable answer",
            retry_after=retry_after(exc),
        )
    if isinstance(exc, ax.ClientAuthenticationError | ai.AuthenticationRequiredError):
        return PermissionDenied(text, code=ErrorCode.AuthFailed)
    if status in (401, 403):
        return PermissionDenied(text)
    return None


# The answer was cut, garbled or not what the API promises: a retry may get a
# whole one. Never quoted: the text may hold the body. JSONDecodeError: the
# generated operations parse the body themselves (clients has no decoding policy).
_UNREADABLE = (
    ax.IncompleteReadError, ax.DecodeError, ax.DeserializationError,
    ax.StreamConsumedError, ax.StreamClosedError, ax.ResponseNotReadError,
    json.JSONDecodeError,
)


def _from_fault(exc: BaseException, where: str, said: str, text: str) -> ProviderError:
    """A fault of the exchange or of the SDK, or an answer whose status says no more."""
    if isinstance(exc, ax.ServiceRequestError | ax.ServiceResponseError | ax.TooManyRedirectsError):
        # Network faults and timeouts: worth another try.
        return Unavailable(f"{where}: cannot reach Azure ({type(exc).__name__})")
    if isinstance(exc, _UNREADABLE):
        return Unavailable(f"{where}: Azure's answer could not be read ({type(exc).__name__})")
    if isinstance(exc, ax.HttpResponseError):
        # 400, 409, 412 ... : Key Vault rejected what we asked; retrying cannot help.
        return InvalidRequest(text, code=ErrorCode.BackendRejected)
    if isinstance(exc, ax.SerializationError):
        # The SDK could not put the object's name or version into a request.
        return InvalidParameters([f"{where}: the Azure SDK cannot build a request for this object"])
    if type(exc) is ax.AzureError:
        # The base class itself: azure-core raises it for faults of the exchange
        # it cannot classify (a broken connection pool, an unexpected stream state).
        return Unavailable(f"{where}: Azure SDK failed: {said}")
    if isinstance(exc, AttributeError | TypeError | KeyError | IndexError):
        # An SDK model met an answer without the API's shape. Retried.
        return Unavailable(
            f"{where}: Azure's answer is not what the API promises ({type(exc).__name__})"
        )
    if isinstance(exc, ValueError):
        # The SDKs (and msal) raise ValueError for malformed input: a vault URL,
        # an authority, a tenant id.
        return InvalidParameters([f"{where}: {quote_backend_message(str(exc))}"])
    return ProviderError(f"{where}: unexpected error {type(exc).__name__}")
