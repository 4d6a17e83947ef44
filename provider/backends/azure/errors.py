"""Key Vault's and Azure AD's answers, and failed exchanges -> the provider's error tree.

The provider reads Key Vault and asks Azure AD for tokens itself, on the event
loop (``transport``, ``provider.backends.http1``), so most failures arrive as
the exceptions defined here (an error status, an answer that is not JSON, a
challenge for another domain), as http1's or as the standard library's
(connections, timeouts, TLS, names that do not resolve): ``TRANSPORT_RULES``
says what each of those means, and a test walks http1's classes. The VM
managed identity still goes through
azure-identity: its exceptions (and any other azure-core or msal one) are
mapped by ``sdkerrors``, imported only when such an exception arrives, so a
workload-identity node never loads the SDK.

Key Vault's and Azure AD's messages are quoted (shortened): they name the
object, the operation or the AADSTS code the user needs, never a secret value;
the boundary redacts tokens and nodePublishSecretRef values once more.
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Callable
from typing import Any

from provider.backends.azure.challenge import ChallengeMismatch
from provider.backends.http1 import AnswerTooLarge, BadAnswer, TooManyRedirects
from provider.backends.jsonanswer import UnusableAnswer
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

KEY_VAULT = "Key Vault"
AZURE_AD = "Azure AD"


class AzureStatus(Exception):
    """An answer with an error status from Key Vault or Azure AD (its code and words kept)."""

    def __init__(
        self, service: str, status: int, code: str, said: str, retry_after: float | None
    ) -> None:
        super().__init__(f"{service} answered HTTP {status}")
        self.service = service
        self.status = status
        self.code = code  # Key Vault's error.code, or Azure AD's error ("invalid_client")
        self.said = said  # its message / error_description (first line)
        self.retry_after = retry_after

    @classmethod
    def of(cls, service: str, answer: Any) -> AzureStatus:
        """From an answer (``http1.Answer``, header names lower-cased): its status, error
        body and Retry-After."""
        code = said = ""
        try:
            body = json.loads(answer.body)
        except (ValueError, RecursionError):
            body = None
        if isinstance(body, dict):
            error = body.get("error")
            if isinstance(error, dict):  # Key Vault: {"error": {"code", "message"}}
                code, said = str(error.get("code") or ""), str(error.get("message") or "")
            elif isinstance(error, str):  # Azure AD: {"error", "error_description"}
                code, said = error, str(body.get("error_description") or "")
        first = said.splitlines()[0] if said.strip() else ""
        return cls(service, answer.status, code, first,
                   parse_retry_after(answer.headers.get("retry-after")))


class NoToken(Exception):
    """Azure AD answered, but neither a token nor an error (never quoted: it may hold one)."""

    def __init__(self, status: int, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


class OtherTenant(Exception):
    """Key Vault's challenge names a tenant other than the class's (azure-identity's refusal)."""


class InsecureVault(Exception):
    """A vault URL that is not https: a bearer token is never sent over plain HTTP."""


# What a denied operation needs, named in its error: the access policy
# permission and the Azure RBAC data action (the pod may hold get, not list).
PERMISSIONS = {
    "ListSecrets": "the 'secrets/list' access policy permission (Azure RBAC data action "
    "Microsoft.KeyVault/vaults/secrets/readMetadata/action)",
}


# -- the exchange: http1's and the standard library's exceptions ---------------


def _unreadable(exc: BaseException, where: str) -> ProviderError:
    # Something other than Azure answered (a proxy's page), or the body was cut.
    return Unavailable(f"{where}: Azure's answer could not be read ({type(exc).__name__})")


def _too_large(exc: BaseException, where: str) -> ProviderError:
    # Far beyond any Key Vault object (25 KiB) or token answer: not read.
    limit = getattr(exc, "limit", None)
    size = f"{limit} bytes" if isinstance(limit, int) else "the provider reads"
    return InvalidRequest(f"{where}: Azure's answer is longer than {size}; it was not read",
                          code=ErrorCode.BackendRejected)


def _unreachable(exc: BaseException, where: str) -> ProviderError:
    return Unavailable(f"{where}: cannot reach Azure ({type(exc).__name__})")


def _bad_input(exc: BaseException, where: str) -> ProviderError:
    # A vault URL or a header value a request cannot carry (no host, a port out
    # of range, a line break, a character outside Latin-1).
    return InvalidParameters([f"{where}: {quote_backend_message(str(exc))}"])


Mapper = Callable[[BaseException, str], ProviderError]
# In order: the first row whose classes match decides (subclasses before bases).
TRANSPORT_RULES: tuple[tuple[tuple[type[BaseException], ...], Mapper], ...] = (
    ((AnswerTooLarge,), _too_large),
    ((BadAnswer, UnusableAnswer), _unreadable),
    # Refused, reset, cut mid-answer, timed out, TLS failed (as before: the
    # certificate checks are retried like any handshake failure), a name that
    # does not resolve, a proxy that refused the tunnel: worth another try.
    ((ssl.SSLError, ssl.CertificateError, ConnectionError, TimeoutError, socket.gaierror,
      TooManyRedirects), _unreachable),
    ((ValueError,), _bad_input),
    ((OSError,), _unreachable),
)


def translate(exc: BaseException, *, subject: str, operation: str) -> ProviderError:
    """The provider error for ``exc`` raised by ``operation`` while reading ``subject``."""
    if isinstance(exc, ProviderError):
        return exc
    where = f"{subject}: {operation}"
    if isinstance(exc, AzureStatus):
        return _from_status(exc, subject, operation)
    if isinstance(exc, NoToken):
        return Unavailable(
            f"{where} failed (HTTP {exc.status}): Azure AD's token answer holds neither a token "
            "nor an error; not a usable answer",
            retry_after=exc.retry_after,
        )
    if isinstance(exc, OtherTenant):
        tenant = quote_backend_message(str(exc))
        return PermissionDenied(
            f"{where} failed: the vault is in tenant {tenant!r} (its challenge says so); the "
            f"credential is not configured to acquire tokens for tenant {tenant!r}, only for "
            "the class's tenantID",
            code=ErrorCode.AuthFailed,
        )
    if isinstance(exc, ChallengeMismatch):
        return InvalidRequest(
            f"{where}: Key Vault's authentication challenge does not match the vault's domain, "
            "so no token was sent: check the provider flags --azure-keyvault-endpoint and "
            "--azure-keyvault-dns-suffix (emulators: --azure-skip-challenge-resource-check)",
            code=ErrorCode.ProviderMisconfigured,
        )
    if isinstance(exc, InsecureVault):
        return InvalidRequest(
            f"{where}: the vault URL is not https, and a bearer token is never sent over plain "
            "HTTP: check the provider flag --azure-keyvault-endpoint",
            code=ErrorCode.ProviderMisconfigured,
        )
    if type(exc).__module__.startswith(_SDKS):
        return _sdk_translate(exc, subject, operation)
    for classes, mapper in TRANSPORT_RULES:
        if isinstance(exc, classes):
            return mapper(exc, where)
    if _raised_in_sdk(exc):
        return _sdk_translate(exc, subject, operation)
    if isinstance(exc, AttributeError | TypeError | KeyError | IndexError):
        # An answer without the API's shape (a page without ``value``): retried.
        return Unavailable(
            f"{where}: Key Vault's answer is not what the API promises ({type(exc).__name__})"
        )
    return ProviderError(f"{where}: unexpected error {type(exc).__name__}")


# The VM managed identity's libraries (azure-identity, azure-core, msal).
_SDKS = ("azure.", "msal")


def _sdk_translate(exc: BaseException, subject: str, operation: str) -> ProviderError:
    from provider.backends.azure import sdkerrors

    return sdkerrors.translate(exc, subject=subject, operation=operation)


def _raised_in_sdk(exc: BaseException) -> bool:
    """Whether ``exc`` (a builtin class) was raised inside azure-core, azure-identity or msal."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return str(tb.tb_frame.f_globals.get("__name__", "")).startswith(_SDKS)


def _from_status(exc: AzureStatus, subject: str, operation: str) -> ProviderError:
    """What an error status says, worded as before: ``(HTTP 404 SecretNotFound): <message>``."""
    status = exc.status
    detail = " ".join(x for x in (f"HTTP {status}", exc.code) if x)
    head = f"{subject}: {operation} failed ({detail})"
    said = quote_backend_message(exc.said)
    text = f"{head}: {said}" if said else head
    if status == 429:
        return Unavailable(text, code=ErrorCode.Throttled, retry_after=exc.retry_after)
    if status >= 500:
        if exc.service == AZURE_AD and not exc.code:
            # A 5xx body without an AADSTS error (a proxy, a fault in between):
            # transient, and not quoted (it may hold a token).
            return translate(NoToken(status, exc.retry_after), subject=subject,
                             operation=operation)
        return Unavailable(text, retry_after=exc.retry_after)
    if exc.service == AZURE_AD:
        # Azure AD refused the credential (invalid_client, AADSTS codes, 400 and 401).
        return PermissionDenied(text, code=ErrorCode.AuthFailed)
    if status == 404:
        return NotFound(text)
    if status == 401:
        return PermissionDenied(text, code=ErrorCode.AuthFailed)
    if status == 403:
        if operation in PERMISSIONS:
            text = f"{text}; {operation} needs {PERMISSIONS[operation]}"
        return PermissionDenied(text)
    # 3xx, 400, 409, 412 ... : Key Vault rejected what we asked; retrying cannot help.
    return InvalidRequest(text, code=ErrorCode.BackendRejected)
