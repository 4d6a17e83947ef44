"""Every azure-core and azure-identity exception, and every way the provider's own HTTP exchange
fails (provider.backends.http1 and the standard library), maps to a specific provider error."""

from __future__ import annotations

import inspect
import socket
import ssl
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.core.exceptions as ax
import azure.identity as ai
import pytest

from provider.backends import http1
from provider.backends.azure.errors import translate
from provider.backends.jsonanswer import UnusableAnswer
from provider.codes import ErrorCode
from provider.errors import (
    InvalidParameters,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    ProviderError,
    Unavailable,
)
from tests.support.mapping import assert_mapped

pytestmark = pytest.mark.azure


def _exception_classes(module: ModuleType) -> list[type[BaseException]]:
    return [
        obj
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, BaseException)
        and obj.__module__.startswith(("azure.core", "azure.identity"))
    ]


def _instance(cls: type[BaseException]) -> BaseException:
    try:
        return cls("boom")
    except Exception:  # some need a response object; build them bare
        exc = cls.__new__(cls)
        BaseException.__init__(exc, "boom")
        return exc


CLASSES = _exception_classes(ax) + _exception_classes(ai)


@pytest.mark.parametrize("cls", CLASSES, ids=[c.__name__ for c in CLASSES])
def test_every_sdk_exception_is_mapped(cls: type[BaseException]) -> None:
    err = translate(_instance(cls), subject="object 'x'", operation="GetSecret")
    assert_mapped(err, cls, "object 'x'")


def _bare(cls: type[BaseException]) -> BaseException:
    """An instance of ``cls`` without its constructor (each takes other arguments)."""
    exc = cls.__new__(cls)
    exc.args = ("boom",)
    return exc


HTTP1 = [c for _, c in inspect.getmembers(http1, inspect.isclass)
         if issubclass(c, Exception) and c.__module__ == http1.__name__]
EXCHANGE = [
    *[_bare(c) for c in HTTP1], UnusableAnswer("is not JSON"), ssl.SSLError("EOF"),
    ssl.SSLEOFError("EOF occurred in violation of protocol"),
    ssl.SSLCertVerificationError("certificate verify failed"), ConnectionResetError(),
    ConnectionRefusedError(), TimeoutError(), OSError("no route"),
    socket.gaierror(-2, "Name or service not known"), ValueError("a line break"),
    UnicodeEncodeError("latin-1", "\u20ac", 0, 1, "ordinal not in range"),
]


@pytest.mark.parametrize("exc", EXCHANGE, ids=lambda e: type(e).__name__)
def test_every_failure_of_the_exchange_is_mapped(exc: BaseException) -> None:
    err = translate(exc, subject="object 'x'", operation="GetSecret")
    assert_mapped(err, type(exc), "object 'x'")


def test_walk_found_http1s_classes() -> None:
    assert {"RemoteClosed", "BadAnswer", "AnswerTooLarge", "ProxyRefused",
            "TooManyRedirects"} <= {c.__name__ for c in HTTP1}


@pytest.mark.parametrize(
    ("exc", "kind", "code"),
    [
        (http1.RemoteClosed(received=True), Unavailable, ErrorCode.BackendUnavailable),
        (http1.BadAnswer("not HTTP"), Unavailable, ErrorCode.BackendUnavailable),
        (http1.ProxyRefused("407"), Unavailable, ErrorCode.BackendUnavailable),
        (http1.AnswerTooLarge(16), InvalidRequest, ErrorCode.BackendRejected),
        (ssl.SSLCertVerificationError("certificate verify failed"), Unavailable,
         ErrorCode.BackendUnavailable),
        (socket.gaierror(-2, "Name or service not known"), Unavailable,
         ErrorCode.BackendUnavailable),
        (ValueError("a header or the target holds a line break"), InvalidParameters,
         ErrorCode.InvalidParameters),
    ],
    ids=["cut", "not-http", "proxy-refused", "too-large", "tls-verify", "no-such-host",
         "bad-header"],
)
def test_exchange_failures(exc: BaseException, kind: type[ProviderError], code: str) -> None:
    err = translate(exc, subject="object 'x'", operation="GetSecret")
    assert type(err) is kind and err.code == code, err
    assert str(err).startswith(f"{code}: object 'x': GetSecret")


def test_walk_found_the_classes_that_matter() -> None:
    names = {c.__name__ for c in CLASSES}
    assert {
        "HttpResponseError",
        "ClientAuthenticationError",
        "ResourceNotFoundError",
        "ServiceRequestError",
        "CredentialUnavailableError",
    } <= names


class _Response:
    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        self.headers = headers or {}
        self.reason = "x"

    def text(self) -> str:
        return ""


@pytest.mark.parametrize(
    ("status", "headers", "kind", "retry_after"),
    [
        (429, {"Retry-After": "7"}, Unavailable, 7.0),
        (503, {}, Unavailable, None),
        (404, {}, NotFound, None),
        (403, {}, PermissionDenied, None),
        (401, {}, PermissionDenied, None),
    ],
    ids=["429", "503", "404", "403", "401"],
)
def test_http_status(
    status: int, headers: dict[str, str], kind: type[ProviderError], retry_after: float | None
) -> None:
    exc: Any = ax.HttpResponseError(message="said", response=_Response(status, headers))
    err = translate(exc, subject="object 'x'", operation="GetSecret")
    assert type(err) is kind
    assert f"HTTP {status}" in err.message
    if retry_after is not None:
        assert isinstance(err, Unavailable) and err.retry_after == retry_after


def test_throttled_token_endpoint_is_transient_not_denied() -> None:
    exc: Any = ax.ClientAuthenticationError(message="AADSTS50196", response=_Response(429))
    assert isinstance(translate(exc, subject="s", operation="o"), Unavailable)


@pytest.mark.parametrize(
    "message",
    [
        "Unexpected response from Microsoft Entra ID: {'access_token': 'tok-9f8e7d', 'x': 1}",
        "No response content from Microsoft Entra ID",
    ],
)
def test_a_token_answer_with_neither_token_nor_error_is_transient_and_never_quoted(
    message: str,
) -> None:
    err = translate(ax.ClientAuthenticationError(message=message), subject="s", operation="op")
    assert isinstance(err, Unavailable) and err.code == "BackendUnavailable"
    assert "tok-9f8e7d" not in str(err) and "neither a token nor an error" in str(err)


def test_an_aadsts_error_stays_a_denial() -> None:
    err = translate(
        ax.ClientAuthenticationError(message="AADSTS700016: Application not found"),
        subject="s",
        operation="op",
    )
    assert isinstance(err, PermissionDenied) and "AADSTS700016" in str(err)


def test_value_error_is_a_parameter_problem() -> None:
    assert isinstance(
        translate(ValueError("bad url"), subject="s", operation="o"), InvalidParameters
    )


def test_plain_http_authority_host_stops_start_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """azure-identity refuses it on every mount; we refuse it once, before serving."""
    from provider.cli import main

    code = main(["serve", "--socket-dir", str(tmp_path), "--azure-authority-host", "http://aad"])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot start" in err and "--azure-authority-host" in err and "https://" in err
    assert list(tmp_path.iterdir()) == []  # no socket was created
