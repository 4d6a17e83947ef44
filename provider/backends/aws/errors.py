"""botocore exceptions -> the provider's error tree, in one function.

Every botocore exception class maps to the most specific provider error (a
test walks ``botocore.exceptions`` and ``botocore.parsers`` and fails if one
reaches the catch-all). The AWS message is quoted after redaction: it names
ARNs and actions, which is what the user needs to fix a policy, and never the
secret value. The text of an exception about an unreadable answer is never
quoted: botocore puts the raw body in it, and a cut STS answer holds
credentials.

    ClientError                         by AWS error code and HTTP status (below)
    UnreadableErrorAnswer (ours)        Unavailable, with the answer's status and
                                        Retry-After (botocore would lose both)
    unreadable or cut answers           Unavailable (retried): ResponseParserError,
      (and the AttributeError/TypeError  IncompleteReadError, checksum errors ...
      botocore's parser raises on a
      body of the wrong JSON type)
    network, timeouts, retry quota      Unavailable
    no usable credentials               PermissionDenied (AuthFailed)
    request botocore refuses to send    InvalidParameters (object names, region)
    region and endpoint resolution      InvalidParameters ('region')
    the provider's own AWS setup        InvalidRequest (ProviderMisconfigured):
      (AWS_* environment, config files,  the pod cannot fix it and retrying
      botocore data, SDK features we     cannot help; the message says to fix
      never use)                         the provider's deployment
    the EKS Pod Identity agent's HTTP   refused (4xx but 429) PermissionDenied
      answers (urllib)                   (AuthFailed); other statuses and
                                         connection failures Unavailable

The two reads sent on the event loop (``jsonrpc``: GetSecretValue,
GetParameters) raise botocore's ClientError for an error answer, so the rows
above hold for them too; what their transport (``provider.backends.http1``)
and the standard library raise has its own table, transport_rules():

    a 2xx that is not a JSON object     Unavailable (something in between answered)
    TLS (certificate, handshake)        Unavailable, naming AWS_CA_BUNDLE (as
                                        botocore's SSLError was)
    connection, timeout, no such host,  Unavailable (cannot reach AWS)
      cut answer, not HTTP, a proxy's
      refusal
    an answer over 16 MiB               InvalidRequest (BackendRejected): not read
    a URL or header HTTP cannot carry   InvalidRequest (ProviderMisconfigured)
"""

from __future__ import annotations

import functools
import socket
import ssl
import urllib.error
from collections.abc import Callable

import botocore.exceptions as bx
import botocore.parsers

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

NOT_FOUND = {
    "ResourceNotFoundException",
    "ParameterNotFound",
    "ParameterVersionNotFound",
    "ParameterVersionLabelNotFound",
    "NoSuchEntity",
}
DENIED = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidIdentityToken",
    "IDPRejectedClaim",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "KMSAccessDeniedException",
    "DecryptionFailure",
    "AuthFailure",
    "403",
}
TRANSIENT = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "InternalServiceError",
    "InternalServiceErrorException",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "IDPCommunicationError",
    "RequestTimeout",
    "RequestTimeoutException",
    "KMSInternalException",
}


# The answer could not be read: cut short, garbled, or not what the API
# promises. A retry may get a whole answer; never quote these (raw bodies).
UNREADABLE = (
    botocore.parsers.ResponseParserError,
    bx.IncompleteReadError,
    bx.ResponseStreamingError,
    bx.ChecksumError,
    bx.FlexibleChecksumError,
    bx.AwsChunkedWrapperError,
)
# botocore's parsers assume the body has the shape of the API model: a JSON list
# or a string where an object belongs ends in one of these, raised by the SDK.
PARSER_FAULTS = (AttributeError, TypeError, KeyError, IndexError, ValueError, UnicodeError)
NETWORK = (
    bx.ConnectionError
    | bx.HTTPClientError
    | bx.ConnectionClosedError
    | bx.ReadTimeoutError
    | bx.ConnectTimeoutError
    | bx.EndpointConnectionError
    # botocore's own retry quota: transient as well.
    | bx.CapacityNotAvailableError
)
NO_CREDENTIALS = (
    bx.NoCredentialsError
    | bx.PartialCredentialsError
    | bx.CredentialRetrievalError
    | bx.UnknownCredentialError
    | bx.TokenRetrievalError
    | bx.NoAuthTokenError
    | bx.MetadataRetrievalError
    | bx.SSOError
    | bx.LoginError
    | bx.RefreshWithMFAUnsupportedError
)
# botocore refused to send the request: a name or value from the SecretProviderClass
# breaks the API's rules (length, pattern, a host label built from it).
BAD_REQUEST = (
    bx.ParamValidationError
    | bx.ValidationError
    | bx.MissingParametersError
    | bx.InvalidDNSNameError
    | bx.InvalidHostLabelError
    | bx.InvalidExpressionError
)
BAD_REGION = (
    bx.NoRegionError
    | bx.UnknownEndpointError
    | bx.InvalidRegionError
    | bx.EndpointResolutionError
    | bx.UnknownRegionError
    | bx.BaseEndpointResolverError
    | bx.ServiceNotInRegionError
    | bx.UnsupportedOutpostResourceError
)

# Raised before any request leaves: the provider's AWS configuration (AWS_*
# variables, config files), its botocore data, or an SDK feature it never uses.
# Listed one by one, so that a class botocore adds later reaches the catch-all
# and the mapping test names it.
PROVIDER_SETUP = (
    bx.ConfigNotFound,
    bx.ConfigParseError,
    bx.ProfileNotFound,
    bx.InvalidConfigError,
    bx.InvalidRetryConfigurationError,
    bx.InvalidDefaultsMode,
    bx.InvalidEndpointConfigurationError,
    bx.InvalidEndpointDiscoveryConfigurationError,
    bx.InvalidIMDSEndpointError,
    bx.InvalidIMDSEndpointModeError,
    bx.InvalidProxiesConfigError,
    bx.InvalidSTSRegionalEndpointsConfigError,
    bx.InvalidChecksumConfigError,
    bx.InvalidS3AddressingStyleError,
    bx.InvalidS3UsEast1RegionalEndpointConfigError,
    bx.UnsupportedS3AccesspointConfigurationError,
    bx.UnsupportedS3ArnError,
    bx.UnsupportedS3ConfigurationError,
    bx.UnsupportedS3ControlArnError,
    bx.UnsupportedS3ControlConfigurationError,
    bx.UnknownSignatureVersionError,
    bx.UnsupportedSignatureVersionError,
    bx.UnsupportedTLSVersionWarning,
    bx.MissingDependencyException,
    bx.MD5UnavailableError,
    bx.DataNotFoundError,
    bx.ApiVersionNotFoundError,
    bx.UndefinedModelAttributeError,
    bx.UnknownServiceStyle,
    bx.UnsupportedServiceProtocolsError,
    bx.UnknownClientMethodError,
    bx.EndpointProviderError,
    bx.OperationNotPageableError,
    bx.PaginationError,
    bx.WaiterError,
    bx.WaiterConfigError,
    bx.StubResponseError,
    bx.UnseekableStreamError,
    bx.ImminentRemovalWarning,
)


# Protocols whose error answers are XML; the others' are JSON.
_XML_PROTOCOLS = ("query", "rest-xml", "ec2")


class UnreadableErrorAnswer(Exception):
    """A 429 or 5xx answer whose body botocore cannot read.

    botocore's parser raises ResponseParserError on such a body (an empty 429
    from a proxy, a JSON ``{"message": "busy"}`` where STS speaks XML) and the
    status and headers are lost with it: the Retry-After then goes unheard.
    Raised before parsing by :func:`keep_unreadable_error_status`.
    """

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


def keep_unreadable_error_status(
    response_dict: object = None, operation_model: object = None, **_: object
) -> None:
    """botocore ``before-parse`` hook: a 429/5xx it could not read raises UnreadableErrorAnswer."""
    if not isinstance(response_dict, dict):
        return
    status = int(response_dict.get("status_code") or 0)
    if status != 429 and status < 500:
        return
    body = response_dict.get("body") or b""
    protocol = getattr(operation_model, "metadata", {}).get("protocol", "")
    opening = b"<" if protocol in _XML_PROTOCOLS else b"{"
    if isinstance(body, bytes) and body.lstrip()[:1] == opening:
        return  # botocore reads it: its error code and the headers are kept
    headers = response_dict.get("headers") or {}
    value = headers.get("retry-after")
    raise UnreadableErrorAnswer(
        status, parse_retry_after(value if isinstance(value, str) else None)
    )


def retry_after(exc: bx.ClientError) -> float | None:
    """The Retry-After AWS sent with a throttling or 503 answer, in seconds."""
    headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders") or {}
    value = headers.get("retry-after") if isinstance(headers, dict) else None
    return parse_retry_after(value if isinstance(value, str) else None)


# Operations a pod's role may well lack (a listing, a chained role): a denial
# names the IAM permission to grant.
PERMISSIONS = {
    "GetParametersByPath": "ssm:GetParametersByPath",
    "ListSecrets": "secretsmanager:ListSecrets",
    "AssumeRole": "sts:AssumeRole",
}


def _needs(operation: str) -> str:
    permission = PERMISSIONS.get(operation)
    return f" (the role needs {permission})" if permission else ""


# The ``operation`` of a request to the EKS Pod Identity agent (credentials.py).
AGENT_OPERATION = "PodIdentity"


def agent_refused(exc: BaseException) -> bool:
    """The EKS Pod Identity agent refused the pod's token: a definite answer, never retried.

    Its other failures (429, 5xx, no connection) are transient: with two agent
    addresses (``preferredAddressType: auto``) the other one is tried.
    """
    return isinstance(exc, urllib.error.HTTPError) and 400 <= exc.code < 500 and exc.code != 429


def _agent(exc: OSError, subject: str) -> ProviderError:
    """What the EKS Pod Identity agent (plain HTTP, read with urllib) answered."""
    if isinstance(exc, urllib.error.HTTPError):
        if agent_refused(exc):
            return PermissionDenied(
                f"{subject} refused the pod's token (HTTP {exc.code}); check the pod identity "
                "association of its service account",
                code=ErrorCode.AuthFailed,
            )
        return Unavailable(f"{subject} answered HTTP {exc.code}")
    return Unavailable(f"{subject} cannot be reached ({type(exc).__name__})")


class UnsendableRequest(Exception):
    """http1 cannot frame a request (``jsonrpc``): the endpoint URL or a header (the
    credentials, the User-Agent) holds a line break or a character outside Latin-1.
    Names neither: they may hold credentials."""

    def __init__(self) -> None:
        super().__init__("the endpoint URL or a header cannot be sent over HTTP")


def _tls(exc: BaseException, subject: str, operation: str) -> ProviderError:
    return Unavailable(
        f"{subject}: {operation}: TLS with AWS failed ({type(exc).__name__}); if the endpoint "
        "uses a private CA, set AWS_CA_BUNDLE in the provider's environment"
    )


def _unreachable(exc: BaseException, subject: str, operation: str) -> ProviderError:
    return Unavailable(f"{subject}: {operation}: cannot reach AWS ({type(exc).__name__})")


def _too_large(exc: BaseException, subject: str, operation: str) -> ProviderError:
    limit = getattr(exc, "limit", None)
    size = f"{limit} bytes" if isinstance(limit, int) else "the provider reads"
    return InvalidRequest(
        f"{subject}: {operation}: AWS's answer is longer than {size}; it was not read",
        code=ErrorCode.BackendRejected,
    )


def _unsendable(exc: BaseException, subject: str, operation: str) -> ProviderError:
    return InvalidRequest(
        f"{subject}: {operation}: {exc}; check the provider's AWS endpoint (AWS_ENDPOINT_URL) "
        "and AWS_* environment",
        code=ErrorCode.ProviderMisconfigured,
    )


def _unusable(exc: BaseException, subject: str, operation: str) -> ProviderError:
    reason = getattr(exc, "reason", "is not usable")
    return Unavailable(f"{subject}: {operation}: AWS's answer {reason}; not a usable answer")


Rules = tuple[
    tuple[tuple[type[BaseException], ...], Callable[[BaseException, str, str], ProviderError]],
    ...,
]


@functools.cache
def transport_rules() -> Rules:
    """What the event-loop reads' transport (jsonrpc over http1) and the standard library
    raise; first match wins (ssl.SSLError and http1's classes are OSErrors). http1 (and
    httptools) is imported here, at the first failure, not by an idle provider."""
    from provider.backends.http1 import AnswerTooLarge, TooManyRedirects

    return (
        ((UnusableAnswer,), _unusable),
        ((AnswerTooLarge,), _too_large),
        ((UnsendableRequest,), _unsendable),
        ((ssl.SSLError,), _tls),
        # Refused, reset, cut answers, not HTTP (http1.BadAnswer), a proxy's refusal
        # (http1.ProxyRefused), timeouts, a name that does not resolve; TooManyRedirects
        # should jsonrpc ever follow one (it follows none).
        ((ConnectionError, TimeoutError, socket.gaierror, OSError, TooManyRedirects),
         _unreachable),
    )


def translate(exc: BaseException, *, subject: str, operation: str) -> ProviderError:
    """The provider error for ``exc`` raised by ``operation`` while reading ``subject``."""
    if isinstance(exc, ProviderError):
        return exc
    name = type(exc).__name__
    if isinstance(exc, bx.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", "")) or "Unknown"
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        said = quote_backend_message(str(err.get("Message", "")))
        text = f"{subject}: {operation} failed with {code}" + (f": {said}" if said else "")
        if code in NOT_FOUND:
            return NotFound(text)
        if code in DENIED:
            return PermissionDenied(text + _needs(operation))
        if code in TRANSIENT or status == 429 or status >= 500:
            return Unavailable(
                text,
                code=ErrorCode.Throttled if "hrottl" in code or status == 429 else None,
                retry_after=retry_after(exc),
            )
        if code == "InvalidRequestException" and "delet" in said.lower():
            return NotFound(text)
        if status == 403:
            return PermissionDenied(text + _needs(operation))
        return InvalidRequest(text, code=ErrorCode.BackendRejected)
    if isinstance(exc, UnreadableErrorAnswer):
        return Unavailable(
            f"{subject}: {operation}: AWS answered HTTP {exc.status} with a body that cannot "
            "be read",
            code=ErrorCode.Throttled if exc.status == 429 else None,
            retry_after=exc.retry_after,
        )
    if isinstance(exc, UNREADABLE):
        return Unavailable(f"{subject}: {operation}: AWS's answer could not be read ({name})")
    if isinstance(exc, NETWORK):
        return Unavailable(f"{subject}: {operation}: cannot reach AWS ({name})")
    if isinstance(exc, NO_CREDENTIALS):
        return PermissionDenied(
            f"{subject}: no usable AWS credentials for {operation}", code=ErrorCode.AuthFailed
        )
    if isinstance(exc, bx.ParamValidationError):
        return InvalidParameters(
            [f"{subject}: {operation} rejected the request: {quote_backend_message(str(exc))}"]
        )
    if isinstance(exc, BAD_REGION):
        return InvalidParameters([f"{subject}: {operation}: {name}: set parameter 'region'"])
    if isinstance(exc, BAD_REQUEST):
        return InvalidParameters([f"{subject}: {operation}: AWS SDK refused the request ({name})"])
    if isinstance(exc, PROVIDER_SETUP) or type(exc) is bx.BotoCoreError:
        # No SecretProviderClass can fix that, and no retry.
        return InvalidRequest(
            f"{subject}: {operation}: the provider's AWS SDK setup cannot make this request "
            f"({name}); check the provider's AWS_* environment and its installation",
            code=ErrorCode.ProviderMisconfigured,
        )
    if isinstance(exc, urllib.error.URLError) or (
        operation == AGENT_OPERATION and isinstance(exc, OSError)
    ):
        # botocore's network errors are mapped above: this is the agent's (urllib).
        return _agent(exc, subject)
    for classes, mapper in transport_rules():
        if isinstance(exc, classes):
            return mapper(exc, subject, operation)
    if isinstance(exc, PARSER_FAULTS):
        return Unavailable(
            f"{subject}: {operation}: AWS's answer is not what the API promises ({name})"
        )
    return ProviderError(f"{subject}: {operation}: unexpected error {name}")
