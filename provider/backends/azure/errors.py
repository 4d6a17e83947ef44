"""Key Vault's and Azure AD's answers, and failed exchanges -> the provider's error tree.

The provider reads Key Vault and asks Azure AD for tokens over urllib3
(``transport``), so most failures arrive as the exceptions defined here
(an error status, an answer that is not JSON, a challenge for another
domain) or as urllib3's. The VM managed identity still goes through
azure-identity: its exceptions (and any other azure-core or msal one) are
mapped by ``sdkerrors``, imported only when such an exception arrives, so a
workload-identity node never loads the SDK.

Key Vault's and Azure AD's messages are quoted (shortened): they name the
object, the operation or the AADSTS code the user needs, never a secret value;
the boundary redacts tokens and nodePublishSecretRef values once more.
"""

from __future__ import annotations

import json
from typing import Any

import urllib3.exceptions

from provider.backends.azure.challenge import ChallengeMismatch
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
        """From an answer (``transport.Answer``): its status, error body and Retry-After."""
        code = said = ""
        try:
            body = json.loads(answer.data)
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
                   parse_retry_after(answer.headers.get("Retry-After")))


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
    if isinstance(exc, UnusableAnswer | urllib3.exceptions.DecodeError):
        return Unavailable(f"{where}: Azure's answer could not be read ({type(exc).__name__})")
    if isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError):
        # Refused, reset, timed out, TLS failed, cut by the deadline watchdog: worth another try.
        return Unavailable(f"{where}: cannot reach Azure ({type(exc).__name__})")
    if _from_sdk(exc):
        from provider.backends.azure import sdkerrors

        return sdkerrors.translate(exc, subject=subject, operation=operation)
    if isinstance(exc, ValueError):
        # Malformed input that reached a request (a URL urllib3 cannot parse).
        return InvalidParameters([f"{where}: {quote_backend_message(str(exc))}"])
    if isinstance(exc, AttributeError | TypeError | KeyError | IndexError):
        # An answer without the API's shape (a page without ``value``): retried.
        return Unavailable(
            f"{where}: Key Vault's answer is not what the API promises ({type(exc).__name__})"
        )
    return ProviderError(f"{where}: unexpected error {type(exc).__name__}")


def _from_sdk(exc: BaseException) -> bool:
    """Whether ``exc`` is an azure-core / azure-identity / msal exception or raised in them."""
    if type(exc).__module__.startswith(("azure.", "msal")):
        return True
    tb = exc.__traceback__
    if tb is None:
        return isinstance(exc, ValueError)  # the SDKs' malformed-input errors, built bare
    while tb.tb_next is not None:
        tb = tb.tb_next
    return str(tb.tb_frame.f_globals.get("__name__", "")).startswith(("azure.", "msal"))


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
