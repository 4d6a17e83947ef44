"""Every botocore exception maps to a provider error (provider.backends.aws.errors.translate)."""

from __future__ import annotations

import inspect
from typing import Any

import botocore.exceptions as bx
import botocore.parsers
import grpc
import pytest

from provider.backends.aws.errors import translate
from provider.errors import (
    InvalidParameters,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    ProviderError,
    Unavailable,
)
from provider.status import to_status
from tests.support.mapping import assert_mapped

# botocore.parsers holds ResponseParserError: what an unreadable answer raises.
CLASSES = sorted(
    (
        cls
        for module in (bx, botocore.parsers)
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, Exception) and cls.__module__ == module.__name__
    ),
    key=lambda c: c.__name__,
)


def _instance(cls: type[Exception]) -> Exception:
    """An instance even when the constructor wants keyword arguments."""
    if issubclass(cls, bx.ClientError):
        return cls({"Error": {"Code": "Whatever", "Message": "m"}}, "GetSecretValue")
    try:
        return cls()
    except Exception:
        exc = cls.__new__(cls)
        Exception.__init__(exc, "synthetic")
        exc.kwargs = {}  # type: ignore[attr-defined]
        return exc


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_botocore_exception_is_translated(cls: type[Exception]) -> None:
    err = translate(_instance(cls), subject="object 'db'", operation="GetSecretValue")
    assert_mapped(err, cls, "object 'db'")


def test_the_walk_finds_the_classes() -> None:
    names = {c.__name__ for c in CLASSES}
    assert len(CLASSES) > 90 and {"ResponseParserError", "ClientError", "BotoCoreError"} <= names


def test_a_class_botocore_adds_later_is_caught() -> None:
    """The helper fails on the catch-all: the check above can fail."""

    class NewInBotocore(bx.BotoCoreError):
        fmt = "new"

    err = translate(NewInBotocore(), subject="object 'db'", operation="GetSecretValue")
    with pytest.raises(AssertionError, match="catch-all"):
        assert_mapped(err, NewInBotocore, "object 'db'")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (botocore.parsers.ResponseParserError("<Creds>AKIA-SECRET-SessionToken"), Unavailable),
        (bx.IncompleteReadError(actual_bytes=1, expected_bytes=2), Unavailable),
        (AttributeError("'list' object has no attribute 'get'"), Unavailable),
        (bx.ConfigParseError(path="/x"), InvalidRequest),
        (bx.LoginError(), PermissionDenied),
        (bx.UnknownParameterError(name="x", operation="o", choices="c"), InvalidParameters),
    ],
    ids=lambda v: type(v).__name__,
)
def test_families(exc: Exception, expected: type[ProviderError]) -> None:
    err = translate(exc, subject="role 'r'", operation="AssumeRoleWithWebIdentity")
    assert type(err) is expected
    assert "AKIA" not in str(err) and "SessionToken" not in str(err)  # raw bodies never quoted


@pytest.mark.parametrize(
    ("header", "low", "high"),
    [("2", 2.0, 2.0), ("0.5", 0.5, 0.5), (None, None, None), ("soon", None, None)],
)
def test_retry_after_from_a_throttled_answer(
    header: str | None, low: float | None, high: float | None
) -> None:
    response: Any = {
        "Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
        "ResponseMetadata": {
            "HTTPStatusCode": 400,
            "HTTPHeaders": {} if header is None else {"retry-after": header},
        },
    }
    err = translate(bx.ClientError(response, "GetSecretValue"), subject="s", operation="o")
    assert isinstance(err, Unavailable) and err.code == "Throttled"
    if low is None:
        assert err.retry_after is None
    else:
        assert err.retry_after is not None and low <= err.retry_after <= (high or low)


@pytest.mark.parametrize(
    ("cls", "expected", "code"),
    [
        (bx.EndpointConnectionError, Unavailable, grpc.StatusCode.UNAVAILABLE),
        (bx.ConnectTimeoutError, Unavailable, grpc.StatusCode.UNAVAILABLE),
        (bx.ReadTimeoutError, Unavailable, grpc.StatusCode.UNAVAILABLE),
        (bx.ConnectionClosedError, Unavailable, grpc.StatusCode.UNAVAILABLE),
        (bx.ProxyConnectionError, Unavailable, grpc.StatusCode.UNAVAILABLE),
        (bx.SSLError, Unavailable, grpc.StatusCode.UNAVAILABLE),
        (bx.HTTPClientError, Unavailable, grpc.StatusCode.UNAVAILABLE),
        (bx.NoCredentialsError, PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
        (bx.PartialCredentialsError, PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
        (bx.CredentialRetrievalError, PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
        (bx.ParamValidationError, InvalidParameters, grpc.StatusCode.INVALID_ARGUMENT),
        (bx.NoRegionError, InvalidParameters, grpc.StatusCode.INVALID_ARGUMENT),
        (bx.InvalidRegionError, InvalidParameters, grpc.StatusCode.INVALID_ARGUMENT),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_important_classes(
    cls: type[Exception], expected: type[ProviderError], code: grpc.StatusCode
) -> None:
    err = translate(_instance(cls), subject="s", operation="op")
    assert type(err) is expected
    assert to_status(err)[0] == code


def _client_error(code: str, status: int, message: str = "m") -> bx.ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return bx.ClientError(response, "GetSecretValue")


@pytest.mark.parametrize(
    ("code", "status", "expected", "stable"),
    [
        ("ResourceNotFoundException", 400, NotFound, "ObjectNotFound"),
        ("ParameterNotFound", 400, NotFound, "ObjectNotFound"),
        ("ParameterVersionNotFound", 400, NotFound, "ObjectNotFound"),
        ("AccessDeniedException", 400, PermissionDenied, "AccessDenied"),
        ("InvalidIdentityToken", 400, PermissionDenied, "AccessDenied"),
        ("ExpiredTokenException", 400, PermissionDenied, "AccessDenied"),
        ("403", 403, PermissionDenied, "AccessDenied"),
        ("SomethingNew", 403, PermissionDenied, "AccessDenied"),
        ("ThrottlingException", 400, Unavailable, "Throttled"),
        ("SomethingNew", 429, Unavailable, "Throttled"),
        ("InternalServiceError", 500, Unavailable, "BackendUnavailable"),
        ("ServiceUnavailableException", 503, Unavailable, "BackendUnavailable"),
        ("SomethingNew", 502, Unavailable, "BackendUnavailable"),
        ("InvalidRequestException", 400, NotFound, "ObjectNotFound"),
        ("InvalidParameterException", 400, InvalidRequest, "BackendRejected"),
    ],
)
def test_client_errors(code: str, status: int, expected: type[ProviderError], stable: str) -> None:
    message = "marked for deletion" if code == "InvalidRequestException" else "m"
    err = translate(
        _client_error(code, status, message), subject="object 'db'", operation="GetSecretValue"
    )
    assert type(err) is expected
    assert err.code == stable
    assert str(err).startswith(f"{stable}: object 'db': GetSecretValue failed with {code}")


def test_provider_errors_pass_through() -> None:
    original = NotFound("x")
    assert translate(original, subject="s", operation="o") is original


def test_long_aws_messages_are_cut() -> None:
    err = translate(_client_error("AccessDenied", 403, "y" * 1000), subject="s", operation="o")
    assert len(str(err)) < 400
