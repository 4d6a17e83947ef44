"""AWS's two hot reads (GetSecretValue, GetParameters) sent on the event loop, signed by botocore.

Why: a cold mount reads one Secrets Manager object per request. Through a
botocore client on the backend's threads each read cost ~1.2 ms of CPU
(bench/cost.py: 2.0 / 13.3 / 61.7 ms per 1 / 10 / 50-object mount, against
the Go AWS provider's 3.3 / 7.0 / 24.7 in the same runs): ~0.3 ms of
botocore's own work per call (events, endpoint rules, serializer, signing),
~0.25 ms of urllib3 and http.client, and a thread hand-off and GIL turn per
read. Vault and Azure moved to ``provider.backends.http1`` for the same
reason; AWS's two JSON-1.1 reads follow. What stays botocore's is everything
that decides what a request is: the endpoint URL, signing name and region and
the ``X-Amz-Target`` prefix come from the botocore client made for that
identity, service and region (so ``--aws-endpoint-url``, FIPS and dual-stack
configuration resolve as they always did); the signature is botocore's
(``sigv4`` computes it for the usual shape in ~15 us where botocore's
``SigV4Auth`` took ~90, and is checked against it); botocore's validator
checks the arguments; the body is the bytes its JSON serializer writes for
these inputs, and the User-Agent its (kept) string. Everything else (STS,
ListSecrets, GetParametersByPath, client creation) is botocore's, unchanged.

Answers are read as botocore's JSON parser reads them, for the fields the
backend uses: blobs (SecretBinary) base64-decoded, timestamps through
``endpoints.utc_timestamp``. An error status becomes the ``ClientError``
botocore would raise (``__type`` without its ``namespace#`` -> Error.Code,
``message``/``Message`` -> Error.Message, the status and headers in
ResponseMetadata), and a 429/5xx whose body is not JSON keeps its status and
Retry-After (``errors.keep_unreadable_error_status``), so ``errors.translate``
maps them as before. A 2xx that is not a JSON object is ``UnusableAnswer``.

Connections: one ``http1.Pool`` per endpoint origin, shared by every identity
(credentials travel with each request, never with the pool), at most
``MAX_POOLS`` kept; TLS verified against AWS_CA_BUNDLE (botocore's
``ca_bundle`` setting), else botocore's default bundle; proxies from the
environment (``provider.backends.proxies``); no redirect followed and no
retry here (``FetchContext.call_async`` retries inside the mount deadline).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import ssl
import uuid
import weakref
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.exceptions
import botocore.httpsession
import botocore.validate

from provider.backends import http1
from provider.backends.aws import AwsSettings, errors, sigv4
from provider.backends.aws.credentials import Credentials
from provider.backends.aws.endpoints import utc_timestamp
from provider.backends.aws.errors import UnsendableRequest
from provider.backends.http1 import Answer, Origin
from provider.backends.jsonanswer import UnusableAnswer, json_object

# Endpoint origins kept (a region each, or the custom endpoint); each costs a
# pool and its idle sockets, so the least recently used beyond this are closed.
MAX_POOLS = 64


@dataclass(frozen=True, slots=True)
class _Route:
    """Where and how one client sends one operation (from botocore, once per client)."""

    url: str  # as signed
    origin: Origin
    target: str  # origin-form path and query
    signing_name: str
    region: str
    headers: tuple[tuple[str, str], ...]  # X-Amz-Target, Content-Type
    operation: Any  # botocore's OperationModel


def _route(client: Any, operation: str) -> _Route:
    """The endpoint botocore resolves for ``operation`` and the signing context it uses."""
    meta = client.meta
    model = meta.service_model.operation_model(operation)
    signing: dict[str, Any] = {}
    resolve = getattr(client, "_resolve_endpoint_ruleset", None)
    if resolve is not None:
        # Endpoint rules: FIPS, dual-stack, a custom endpoint (fills signing overrides).
        context: dict[str, Any] = {}
        url = resolve(model, {}, context)[0]
        signing = context.get("signing") or {}
    else:
        url = meta.endpoint_url
    parts = urlsplit(url)
    # botocore's join of the endpoint and the operation's "/" path.
    url = urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, ""))
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    metadata = meta.service_model.metadata
    return _Route(
        url=url,
        origin=Origin.of(url),
        target=target,
        signing_name=str(signing.get("signing_name") or meta.service_model.signing_name),
        region=str(signing.get("region") or meta.region_name),
        headers=(
            ("X-Amz-Target", f"{metadata['targetPrefix']}.{operation}"),
            ("Content-Type", f"application/x-amz-json-{metadata.get('jsonVersion', '1.0')}"),
        ),
        operation=model,
    )


def ca_bundle(configured: str | None) -> str | None:
    """The CA file botocore would verify with: ``ca_bundle`` (AWS_CA_BUNDLE), else its
    default (certifi's bundle when installed, else botocore's own); None: the system's."""
    path = configured or botocore.httpsession.get_cert_path(True)
    return path if isinstance(path, str) and os.path.exists(path) else None


class JsonRpc:
    """Keep-alive pools per AWS endpoint origin; ``call`` sends one signed JSON-1.1 request."""

    def __init__(self, settings: AwsSettings, *, ca_file: str | None) -> None:
        # One http1 pool per endpoint origin, shared by every identity.
        self._pools = http1.Pools(
            "aws.pools", ssl_context=lambda: ssl.create_default_context(cafile=ca_file),
            max_connections=settings.max_connections, connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout, max_pools=MAX_POOLS,
        )
        # Routes per client: they go with the client (evicted with its identity).
        self._routes: weakref.WeakKeyDictionary[Any, dict[str, _Route]] = (
            weakref.WeakKeyDictionary()
        )

    async def call(
        self, client: Any, credentials: Credentials, operation: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        """``operation`` with ``params`` as ``client`` would send it; its answer as botocore
        parses it (the fields the backend reads), or the exception botocore would raise."""
        routes = self._routes.setdefault(client, {})
        route = routes.get(operation)
        if route is None:
            try:
                route = routes[operation] = _route(client, operation)
            except ValueError:
                raise UnsendableRequest() from None
        botocore.validate.validate_parameters(params, route.operation.input_shape)
        body = json.dumps(params).encode("utf-8")
        if route.target == "/":
            # The usual shape: signed here, as botocore signs it (see sigv4).
            headers = dict(route.headers)
            headers["User-Agent"] = _user_agent(client)
            headers.update(sigv4.sign_post(
                access_key=credentials.access_key, secret_key=credentials.secret_key,
                token=credentials.session_token or None, region=route.region,
                service=route.signing_name, host=route.origin.netloc, headers=headers,
                body=body,
            ))
        else:  # an endpoint with a path or a query: botocore's general signer
            request = botocore.awsrequest.AWSRequest(
                "POST", route.url, dict(route.headers), body
            )
            request.headers["User-Agent"] = _user_agent(client)
            frozen = botocore.credentials.ReadOnlyCredentials(
                credentials.access_key, credentials.secret_key,
                credentials.session_token or None,
            )
            botocore.auth.SigV4Auth(frozen, route.signing_name, route.region).add_auth(request)
            headers = {name: _text(value) for name, value in request.headers.items()}
        # After signing, as botocore adds them (unsigned): one attempt per call.
        headers["amz-sdk-invocation-id"] = str(uuid.uuid4())
        headers["amz-sdk-request"] = "attempt=1"
        try:
            pool = self._pools.get(route.origin)
            answer = await pool.request("POST", route.target, headers, body)
        except ValueError:
            raise UnsendableRequest() from None
        return _parsed(answer, route, operation, client)

    def close(self) -> None:
        """Close every pool (idle connections now, busy ones when their answer is in)."""
        self._pools.close()


def _user_agent(client: Any) -> str:
    """The User-Agent the client sends: its kept string (endpoints.keep_user_agent), or,
    were botocore's private builder missing, the client's configured one."""
    creator = getattr(client, "_user_agent_creator", None)
    if creator is None:
        return str(client.meta.config.user_agent)
    return str(creator.to_string())


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _parsed(answer: Answer, route: _Route, operation: str, client: Any) -> dict[str, Any]:
    status = answer.status
    if 200 <= status < 300:
        return _read(json_object(answer.body), operation)
    # A 429/5xx whose body is not JSON: its status and Retry-After, as botocore's hook keeps them.
    errors.keep_unreadable_error_status(
        {"status_code": status, "headers": answer.headers, "body": answer.body}, route.operation
    )
    error = _error(answer)
    # The modeled class botocore raises for the code (ResourceNotFoundException...),
    # else ClientError.
    kind = client.exceptions.from_code(error["Error"]["Code"])
    raise kind(error, operation)


def _error(answer: Answer) -> dict[str, Any]:
    """The error botocore's JSON parser makes of an error answer."""
    try:
        text = answer.body.decode("utf-8")
    except UnicodeDecodeError:
        raise UnusableAnswer("is an error answer that is not UTF-8") from None
    body: object = {}
    if text:
        try:
            body = json.loads(text)
        except (ValueError, RecursionError):
            body = {"message": text}  # botocore quotes an unreadable body as the message
    if not isinstance(body, dict):
        raise UnusableAnswer("is an error answer that is not a JSON object")
    code = body.get("__type", str(answer.status))
    if isinstance(code, str):
        code = code.split(":", 1)[0].rsplit("#", 1)[-1]
    metadata: dict[str, Any] = {
        "HTTPStatusCode": answer.status,
        "HTTPHeaders": answer.headers,
        "RetryAttempts": 0,
    }
    if "x-amzn-requestid" in answer.headers:
        metadata["RequestId"] = answer.headers["x-amzn-requestid"]
    return {
        "Error": {"Message": body.get("message", body.get("Message", "")), "Code": code},
        "ResponseMetadata": metadata,
    }


def _read(body: dict[str, Any], operation: str) -> dict[str, Any]:
    """The answer's blobs and timestamps as botocore's parser returns them."""
    try:
        if operation == "GetSecretValue":
            if isinstance(body.get("SecretBinary"), str):
                body["SecretBinary"] = base64.b64decode(body["SecretBinary"])
            if "CreatedDate" in body:
                body["CreatedDate"] = utc_timestamp(body["CreatedDate"])
        elif isinstance(body.get("Parameters"), list):
            for param in body["Parameters"]:
                if isinstance(param, dict) and "LastModifiedDate" in param:
                    param["LastModifiedDate"] = utc_timestamp(param["LastModifiedDate"])
    except (binascii.Error, ValueError, TypeError, OverflowError):
        raise UnusableAnswer("holds a value the API does not send") from None
    return body
