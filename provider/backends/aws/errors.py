"""botocore exceptions -> the provider's error tree, in one function.

Every botocore exception class maps to the most specific provider error (a
test walks ``botocore.exceptions`` and fails if one is left unmapped). The
AWS message is quoted after redaction: it names ARNs and actions, which is
what the user needs to fix a policy, and never the secret value.
"""

from __future__ import annotations

import botocore.exceptions as bx

from provider.errors import (
    InvalidParameters,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    ProviderError,
    Unavailable,
    quote_backend_message,
)

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


def translate(exc: BaseException, *, subject: str, operation: str) -> ProviderError:
    """The provider error for ``exc`` raised by ``operation`` while reading ``subject``."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, bx.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", "")) or "Unknown"
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        said = quote_backend_message(str(err.get("Message", "")))
        text = f"{subject}: {operation} failed with {code}" + (f": {said}" if said else "")
        if code in NOT_FOUND:
            return NotFound(text)
        if code in DENIED:
            return PermissionDenied(text)
        if code in TRANSIENT or status == 429 or status >= 500:
            return Unavailable(
                text, code="Throttled" if "hrottl" in code or status == 429 else None
            )
        if code == "InvalidRequestException" and "delet" in said.lower():
            return NotFound(text)
        if status == 403:
            return PermissionDenied(text)
        return InvalidRequest(text, code="BackendRejected")
    if isinstance(exc, bx.ParamValidationError):
        return InvalidParameters(
            [f"{subject}: {operation} rejected the request: {quote_backend_message(str(exc))}"]
        )
    if isinstance(
        exc,
        bx.NoCredentialsError
        | bx.PartialCredentialsError
        | bx.CredentialRetrievalError
        | bx.UnknownCredentialError
        | bx.TokenRetrievalError
        | bx.NoAuthTokenError
        | bx.MetadataRetrievalError
        | bx.SSOError,
    ):
        return PermissionDenied(
            f"{subject}: no usable AWS credentials for {operation}", code="AuthFailed"
        )
    if isinstance(
        exc,
        bx.ConnectionError
        | bx.HTTPClientError
        | bx.ConnectionClosedError
        | bx.ReadTimeoutError
        | bx.ConnectTimeoutError
        | bx.EndpointConnectionError
        # A body cut short, or botocore's own retry quota: transient as well.
        | bx.IncompleteReadError
        | bx.CapacityNotAvailableError,
    ):
        return Unavailable(f"{subject}: {operation}: cannot reach AWS ({type(exc).__name__})")
    if isinstance(
        exc,
        bx.NoRegionError
        | bx.UnknownEndpointError
        | bx.InvalidRegionError
        | bx.EndpointResolutionError
        | bx.UnknownRegionError,
    ):
        return InvalidParameters(
            [f"{subject}: {operation}: {type(exc).__name__}: set parameter 'region'"]
        )
    if isinstance(exc, bx.BotoCoreError):
        return ProviderError(
            f"{subject}: {operation}: unexpected AWS SDK error {type(exc).__name__}"
        )
    return ProviderError(f"{subject}: {operation}: unexpected error {type(exc).__name__}")
