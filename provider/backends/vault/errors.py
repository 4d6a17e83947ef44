"""Every way a Vault request fails -> the provider's error tree, as tables.

The transport (``transport``) only reports what happened: Vault's answer with
its HTTP status (:class:`VaultStatus`), a 2xx answer that is not a JSON
object (:class:`UnusableAnswer`), or what ``provider.backends.http1`` and
the standard library raise (connections, timeouts, TLS). What each means is
decided here, once:

    HTTP status                       a read                  the login (auth/<mount>/login)
    400, 413, 415, other 4xx          InvalidRequest          PermissionDenied (AuthFailed)
                                      (BackendRejected)       (the role or the token's claims)
    401, 403                          PermissionDenied        PermissionDenied (AuthFailed)
                                      (a LIST: naming the
                                      'list' capability)
    404                               NotFound                PermissionDenied (AuthFailed):
                                                              no such auth mount or role
    405                               InvalidRequest: check 'method'
    429                               Unavailable (Throttled, honours Retry-After)
    408, 412 (a standby not caught    Unavailable (retried; honours Retry-After)
    up), 425, 5xx (sealed, standby)
    a 2xx that is not a JSON object   Unavailable (something in between answered)
    an answer over 16 MiB             InvalidRequest (BackendRejected): not read
    a login answer without a token    PermissionDenied (AuthFailed)
    TLS: certificate, hostname        InvalidRequest (TLSFailed): fix the TLS parameters
    TLS: closed during the handshake  Unavailable (or a client certificate is missing)
    connection, timeout, cut body,    Unavailable (cannot reach Vault)
    not HTTP, a proxy's refusal,
    a redirect loop
    an address that is not usable     InvalidParameters ('vaultAddress')
    unreadable TLS files (OSError)    InvalidRequest (TLSFailed)

A test walks ``provider.backends.http1``'s exceptions and fails if a class
reaches the catch-all. Vault's own error strings are quoted (they name paths and policies,
what the user needs), never request bodies, responses or tokens.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

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

# The ``operation`` of the login request (ctx.call): its rejections are AuthFailed.
LOGIN = "vault.login"


class VaultStatus(Exception):
    """Vault answered ``method path`` with an error status (>= 400).

    ``errors``: Vault's own error strings (its JSON ``errors`` list); the body
    is never kept, since something other than Vault may have sent it.
    """

    def __init__(
        self, status: int, method: str, path: str, errors: tuple[str, ...],
        retry_after: float | None,
    ) -> None:
        super().__init__(f"HTTP {status} for {method} {path}")
        self.status = status
        self.method = method
        self.path = path
        self.errors = errors
        self.retry_after = retry_after


class NoToken(Exception):
    """A login answer whose ``auth`` object holds no token: Vault did not let the pod in."""


@dataclass(frozen=True)
class _Rule:
    kind: type[ProviderError]
    text: str  # "{what}": the request ("GET secret/data/app", "the login")
    code: ErrorCode | None = None


_REJECTED = _Rule(InvalidRequest, "Vault rejected {what}", ErrorCode.BackendRejected)
_DENIED = _Rule(PermissionDenied, "Vault denied {what}")
_TRANSIENT = _Rule(Unavailable, "Vault could not serve {what}")
# Statuses a retry may cure: request timeout, a performance standby not yet
# consistent (412), too early, rate limited; and every 5xx.
_TRANSIENT_4XX = frozenset({408, 412, 425, 429})

READ_RULES: dict[int, _Rule] = {
    401: _DENIED,
    403: _DENIED,
    404: _Rule(NotFound, "nothing at this path in Vault"),
    405: _Rule(InvalidRequest, "Vault does not support {what} here (check 'method')",
               ErrorCode.BackendRejected),
    429: _Rule(Unavailable, "Vault is rate limiting {what}", ErrorCode.Throttled),
}
# A LIST (``select``) needs a capability a read policy does not give: say which.
LIST_RULES: dict[int, _Rule] = {
    **READ_RULES,
    403: _Rule(PermissionDenied, "Vault denied {what} (the role's policy needs the 'list' "
               "capability on {path!r})"),
}
# jwt/kubernetes auth answer 400 for a role that does not exist or a token
# whose claims the role does not allow; 404 for an auth mount that does not exist.
LOGIN_RULES: dict[int, _Rule] = {
    **READ_RULES,
    400: _Rule(PermissionDenied, "Vault rejected the login", ErrorCode.AuthFailed),
    401: _Rule(PermissionDenied, "Vault denied {what}", ErrorCode.AuthFailed),
    403: _Rule(PermissionDenied, "Vault denied {what}", ErrorCode.AuthFailed),
    404: _Rule(PermissionDenied, "no such auth mount or role (check 'vaultAuthMountPath' "
               "and 'roleName')", ErrorCode.AuthFailed),
}


def _status_rule(status: int, login: bool, method: str) -> _Rule:
    table = LOGIN_RULES if login else LIST_RULES if method == "LIST" else READ_RULES
    rule = table.get(status)
    if rule is not None:
        return rule
    if status < 500 and status not in _TRANSIENT_4XX:
        return LOGIN_RULES[400] if login else _REJECTED
    return _TRANSIENT


def _from_status(exc: VaultStatus, subject: str, login: bool) -> ProviderError:
    rule = _status_rule(exc.status, login, exc.method)
    said = quote_backend_message("; ".join(exc.errors))
    text = rule.text.format(what="the login" if login else f"{exc.method} {exc.path}",
                            path=exc.path)
    message = f"{subject}: {text}" + (f": {said}" if said else "")
    if rule.kind is Unavailable:
        return Unavailable(message, code=rule.code, retry_after=exc.retry_after)
    return rule.kind(message, code=rule.code)


# -- the network and TLS ------------------------------------------------------


def _tls(exc: BaseException, subject: str) -> ProviderError:
    text = str(exc)
    if any(word in text.lower() for word in ("certificate", "hostname", "wrong version number")):
        return InvalidRequest(
            f"{subject}: TLS with Vault failed ({_tls_reason(text)}); check 'vaultCACertPath', "
            "'vaultCADirectory', 'vaultTLSServerName', 'vaultTLSClientCertPath' and "
            "'vaultTLSClientKeyPath'",
            code=ErrorCode.TLSFailed,
        )
    # TLS 1.3 servers that require a client certificate mostly just close the
    # connection (EOF) rather than say so: the same symptom as a restart.
    return Unavailable(
        f"{subject}: Vault closed the TLS connection; if it requires a client certificate, "
        "set 'vaultTLSClientCertPath' and 'vaultTLSClientKeyPath'"
    )


def _tls_reason(text: str) -> str:
    """The part of an SSL error that says what to fix (OpenSSL's text is long)."""
    for marker in _TLS_MARKERS:
        start = text.find(marker)
        if start >= 0:
            reason = text[start: start + 120].split("(_ssl.c", maxsplit=1)[0]
            return " ".join(reason.split()).rstrip("')\" ")
    return "handshake failed"


# Where OpenSSL's text says what is wrong.
_TLS_MARKERS = ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed", "hostname",
                "certificate required", "WRONG_VERSION_NUMBER", "wrong version number")


def _unreachable(exc: BaseException, subject: str) -> ProviderError:
    return Unavailable(f"{subject}: cannot reach Vault ({type(exc).__name__})")


def _bad_address(exc: BaseException, subject: str) -> ProviderError:
    return InvalidParameters(
        [f"{subject}: parameter 'vaultAddress' is not usable ({type(exc).__name__})"]
    )


def _not_vault(exc: BaseException, subject: str) -> ProviderError:
    # A body that does not decode: a proxy or something else answered, not Vault.
    return Unavailable(f"{subject}: Vault's answer cannot be decoded ({type(exc).__name__})")


def _too_large(exc: BaseException, subject: str) -> ProviderError:
    # Far beyond what the driver accepts for a whole volume (4 MiB): not read.
    limit = getattr(exc, "limit", None)
    size = f"{limit} bytes" if isinstance(limit, int) else "the provider reads"
    return InvalidRequest(
        f"{subject}: Vault's answer is longer than {size}; it was not read",
        code=ErrorCode.BackendRejected,
    )


Mapper = Callable[[BaseException, str], ProviderError]
# In order: the first row whose classes match decides (subclasses before bases).
TRANSPORT_RULES: tuple[tuple[tuple[type[BaseException], ...], Mapper], ...] = (
    ((ssl.SSLError, ssl.CertificateError), _tls),
    ((AnswerTooLarge,), _too_large),
    ((BadAnswer, UnusableAnswer), _not_vault),
    # Connecting (refused, no route, a name that does not resolve), timeouts,
    # a cut or reset connection, a proxy that refused, a redirect loop: the
    # network or the server had a bad moment.
    ((ConnectionError, TimeoutError, socket.gaierror, TooManyRedirects), _unreachable),
    # A header value or address the request cannot carry (a line break, a
    # character outside Latin-1, a port out of range).
    ((ValueError,), _bad_address),
    ((OSError,), _unreachable),
)


def translate(exc: BaseException, *, subject: str, operation: str) -> ProviderError:
    """The provider error for ``exc``, raised by ``operation`` on ``subject``.

    ``subject`` names what was being done ("object 'db' (secretPath
    'database/creds/app', role 'app')", "login to auth/kubernetes with role
    'app'"); the login (``operation`` :data:`LOGIN`) has its own statuses.
    """
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, VaultStatus):
        return _from_status(exc, subject, operation == LOGIN)
    if isinstance(exc, UnusableAnswer):
        # Something other than Vault answered (a proxy's page) or the body was cut.
        return Unavailable(f"{subject}: Vault's answer {exc.reason}; not a usable answer")
    if isinstance(exc, NoToken):
        return PermissionDenied(f"{subject}: Vault's answer holds no token",
                                code=ErrorCode.AuthFailed)
    for classes, mapper in TRANSPORT_RULES:
        if isinstance(exc, classes):
            return mapper(exc, subject)
    return ProviderError(f"{subject}: {operation}: unexpected error {type(exc).__name__}")
