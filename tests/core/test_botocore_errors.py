"""Every botocore exception maps to a provider error (provider.backends.aws.errors.translate)."""

from __future__ import annotations

import inspect
from typing import Any

import botocore.exceptions as bx
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

CLASSES = sorted(
    (
        cls
        for _, cls in inspect.getmembers(bx, inspect.isclass)
        if issubclass(cls, Exception) and cls.__module__ == bx.__name__
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
    assert isinstance(err, ProviderError)
    assert str(err).startswith(err.code + ": ")
    assert "object 'db'" in str(err)


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
