"""hvac and requests exceptions -> the provider's error tree, in one function.

    hvac.exceptions.VaultError
     +-- InvalidRequest (400), ParamValidationError   login: AuthFailed, read: InvalidRequest
     +-- Unauthorized (401), Forbidden (403)          PermissionDenied (AccessDenied/AuthFailed)
     +-- InvalidPath (404)                            NotFound
     +-- UnsupportedOperation (405)                   InvalidRequest (bad 'method')
     +-- PreconditionFailed (412)                     Unavailable (a standby not caught up yet)
     +-- RateLimitExceeded (429)                      Unavailable (Throttled)
     +-- InternalServerError, BadGateway, VaultDown,
         VaultNotInitialized, UnexpectedError         Unavailable (sealed, standby, 5xx)
    requests.exceptions
     +-- SSLError (certificate problems)              InvalidRequest (TLSFailed): fix TLS params
     +-- ConnectionError, Timeout, ChunkedEncoding... Unavailable (cannot reach Vault)
     +-- InvalidURL, MissingSchema, ...               InvalidParameters ('vaultAddress')
     +-- InvalidJSONError, JSONDecodeError            Unavailable (not Vault answering)

A test walks ``hvac.exceptions`` and ``requests.exceptions`` and fails if a class
is left unmapped. Vault's own error strings are quoted (they name paths and
policies, what the user needs), never request bodies, responses or tokens.
"""

from __future__ import annotations

import hvac.exceptions as hx
import requests.exceptions as rx

from provider.backends.vault.transport import UnusableAnswer
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

# Exception classes that mean "the server or the network had a bad moment".
TRANSIENT_VAULT = (
    hx.InternalServerError,
    hx.BadGateway,
    hx.VaultDown,
    hx.VaultNotInitialized,
    hx.UnexpectedError,
    hx.PreconditionFailed,
)
TRANSIENT_HTTP = (
    rx.ConnectionError,
    rx.Timeout,
    rx.ChunkedEncodingError,
    rx.ContentDecodingError,
    rx.RetryError,
    rx.TooManyRedirects,
)
ADDRESS_PROBLEMS = (
    rx.URLRequired,
    rx.MissingSchema,
    rx.InvalidSchema,
    rx.InvalidURL,
    rx.InvalidHeader,
    rx.InvalidProxyURL,
)


def _said(exc: hx.VaultError) -> str:
    """Vault's own error strings, collapsed and bounded."""
    errors = exc.errors if isinstance(exc.errors, list) else [exc.errors] if exc.errors else []
    text = "; ".join(" ".join(str(e).split()) for e in errors if e)
    if not text and exc.args and isinstance(exc.args[0], str):
        text = " ".join(exc.args[0].split())
    return quote_backend_message(text)


def _tls_problem(exc: rx.SSLError) -> bool:
    text = str(exc).lower()
    return "certificate" in text or "hostname" in text or "wrong version number" in text


def translate(
    exc: BaseException, *, subject: str, operation: str, login: bool = False
) -> ProviderError:
    """The provider error for ``exc`` raised by ``operation`` on ``subject``.

    ``subject`` names what was being done ("object 'db-password' (secretPath
    'database/creds/app')" or "login to auth/kubernetes/login with role 'app'");
    ``login`` is true for the auth request, whose rejections are AuthFailed.
    """
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, UnusableAnswer):
        # Something other than Vault answered (a proxy's page) or the body was cut.
        return Unavailable(
            f"{subject}: {operation}: Vault's answer {exc.reason}; not a usable answer"
        )
    if isinstance(exc, hx.VaultError):
        said = _said(exc)
        tail = f": {said}" if said else ""
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(exc, hx.Forbidden | hx.Unauthorized):
            return PermissionDenied(
                f"{subject}: Vault denied {operation}{tail}",
                code=ErrorCode.AuthFailed if login else None,
            )
        if isinstance(exc, hx.InvalidPath):
            if login:
                return PermissionDenied(
                    f"{subject}: no such auth mount or role{tail} (check 'vaultAuthMountPath' "
                    "and 'roleName')",
                    code=ErrorCode.AuthFailed,
                )
            return NotFound(f"{subject}: nothing at this path in Vault{tail}")
        if isinstance(exc, hx.RateLimitExceeded):
            return Unavailable(f"{subject}: Vault is rate limiting {operation}{tail}",
                               code=ErrorCode.Throttled, retry_after=retry_after)
        if isinstance(exc, TRANSIENT_VAULT) or type(exc) is hx.VaultError:
            # hvac raises the base class itself for answers it cannot classify.
            return Unavailable(f"{subject}: Vault could not serve {operation}{tail}",
                               retry_after=retry_after)
        if isinstance(exc, hx.InvalidRequest | hx.ParamValidationError):
            if login:
                # jwt/kubernetes auth answer 400 for a role that does not exist or
                # a token whose claims the role does not allow.
                return PermissionDenied(f"{subject}: Vault rejected the login{tail}",
                                        code=ErrorCode.AuthFailed)
            return InvalidRequest(f"{subject}: Vault rejected {operation}{tail}",
                                  code=ErrorCode.BackendRejected)
        if isinstance(exc, hx.UnsupportedOperation):
            return InvalidRequest(
                f"{subject}: Vault does not support {operation} here (check 'method'){tail}",
                code=ErrorCode.BackendRejected,
            )
        return Unavailable(f"{subject}: unexpected Vault error {type(exc).__name__}{tail}")
    if isinstance(exc, rx.SSLError):
        if _tls_problem(exc):
            return InvalidRequest(
                f"{subject}: TLS with Vault failed ({_ssl_reason(exc)}); check "
                "'vaultCACertPath', 'vaultCADirectory', 'vaultTLSServerName', "
                "'vaultTLSClientCertPath' and 'vaultTLSClientKeyPath'",
                code=ErrorCode.TLSFailed,
            )
        # TLS 1.3 servers that require a client certificate mostly just close the
        # connection (EOF) rather than say so: the same symptom as a restart.
        return Unavailable(
            f"{subject}: {operation}: Vault closed the TLS connection; if it requires a "
            "client certificate, set 'vaultTLSClientCertPath' and 'vaultTLSClientKeyPath'"
        )
    if isinstance(exc, ADDRESS_PROBLEMS):
        return InvalidParameters(
            [f"{subject}: {operation}: parameter 'vaultAddress' is not usable "
             f"({type(exc).__name__})"]
        )
    if isinstance(exc, rx.InvalidJSONError):
        # A body that is not JSON: a proxy or something else answered, not Vault.
        return Unavailable(f"{subject}: {operation}: Vault's answer is not JSON")
    if isinstance(exc, TRANSIENT_HTTP):
        return Unavailable(f"{subject}: {operation}: cannot reach Vault ({type(exc).__name__})")
    if isinstance(exc, rx.RequestException):
        return Unavailable(f"{subject}: {operation}: HTTP error {type(exc).__name__}")
    if isinstance(exc, OSError):
        # Unreadable CA or client certificate file, raised while connecting.
        return InvalidRequest(
            f"{subject}: cannot use the TLS files ({type(exc).__name__}); check the "
            "certificate parameters",
            code=ErrorCode.TLSFailed,
        )
    if isinstance(exc, ValueError):
        # A body that is not JSON: a proxy or something else answered, not Vault.
        return Unavailable(f"{subject}: {operation}: Vault's answer is not JSON")
    return ProviderError(f"{subject}: {operation}: unexpected error {type(exc).__name__}")


def _ssl_reason(exc: rx.SSLError) -> str:
    text = str(exc)
    for marker in ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed", "hostname",
                   "certificate required", "WRONG_VERSION_NUMBER", "wrong version number"):
        if marker in text:
            start = text.find(marker)
            reason = text[start: start + 120].split("(_ssl.c", maxsplit=1)[0]
            return " ".join(reason.split()).rstrip("')\" ")
    return "handshake failed"
