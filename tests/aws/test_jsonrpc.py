"""The event-loop reads (provider.backends.aws.jsonrpc) send what botocore sends and read what
botocore reads.

moto checks no signature, so the mounts against it cannot show a wrong one:
here botocore's own client and ours make the same call at a frozen instant to
a scripted server (tests/support/rawserver.py) and the requests are compared
byte for byte where botocore fixes them (Authorization included). The same
server's answers, read by both, must give the same values and, for error
answers, the same ClientError and the same provider error.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import re
import socket
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import botocore.auth
import botocore.exceptions
import pytest

from provider.backends import http1
from provider.backends.aws import AwsSettings, errors, jsonrpc
from provider.backends.aws.backend import AwsBackend
from provider.backends.aws.credentials import AwsClient, Credentials
from provider.backends.aws.jsonrpc import JsonRpc
from provider.backends.base import BackendServices
from provider.backends.jsonanswer import UnusableAnswer
from provider.errors import InvalidRequest, NotFound, PermissionDenied, Unavailable
from tests.support.mapping import assert_mapped
from tests.support.rawserver import Conn, raw_server

pytestmark = pytest.mark.aws

REGION = "eu-west-1"
CREDS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-tok", 0.0)
FROZEN = datetime.datetime(2026, 12, 5, 16, 40, 0)
SECRET_OK = json.dumps({
    "ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf",
    "Name": "db",
    "VersionId": "v-1",
    "SecretBinary": base64.b64encode(b"\x00\xffbinary").decode(),
    "VersionStages": ["AWSCURRENT"],
    "CreatedDate": 1733416800.123,
}).encode()
PARAMETERS_OK = json.dumps({
    "Parameters": [{
        "Name": "/app/p", "Type": "SecureString", "Value": "v", "Version": 3,
        "Selector": ":3", "LastModifiedDate": 1733416800.5,
        "ARN": "arn:aws:ssm:eu-west-1:123456789012:parameter/app/p", "DataType": "text",
    }],
    "InvalidParameters": ["/app/missing"],
}).encode()


def answer(status: int, body: bytes, *headers: str) -> bytes:
    extra = "".join(f"{h}\r\n" for h in headers)
    return (f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{extra}\r\n").encode() + body


def always(reply: bytes) -> Callable[[Conn], None]:
    def script(conn: Conn) -> None:
        while conn.read_request() is not None:
            conn.send(reply)

    return script


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's signing clock, fixed for both senders (as botocore's own tests do)."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: FROZEN)


_MADE: list[AwsClient] = []


@pytest.fixture
def backend() -> Iterator[AwsBackend]:
    made = AwsBackend(AwsSettings(region=REGION), BackendServices())
    yield made
    made.close()
    while _MADE:
        _MADE.pop().close()  # their urllib3 sockets


def _client(
    backend: AwsBackend, service: str, url: str, creds: Credentials = CREDS
) -> AwsClient:
    """A client as the backend makes them for an identity (its endpoint: ``url``)."""
    backend._settings = AwsSettings(region=REGION, endpoint_url=url)
    _MADE.append(backend._new_client(service, REGION, creds))
    return _MADE[-1]


def _botocore_request(client: Any, method: str, **params: Any) -> tuple[dict[str, str], bytes]:
    """What botocore's client sends for the call (captured at before-send, not sent)."""
    seen: dict[str, Any] = {}

    class Sent(Exception):
        pass

    def capture(request: Any, **_: Any) -> None:
        seen["headers"] = {k: v.decode() if isinstance(v, bytes) else v
                           for k, v in request.headers.items()}
        seen["body"] = request.body
        raise Sent

    client.meta.events.register("before-send", capture)
    try:
        with pytest.raises(Sent):
            getattr(client, method)(**params)
    finally:
        client.meta.events.unregister("before-send", capture)
    return seen["headers"], seen["body"]


def _received(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip()] = value.strip()
    return lines[0], headers, body


def _ours(
    backend: AwsBackend, client: Any, operation: str, params: dict[str, Any],
    creds: Credentials = CREDS,
) -> Any:
    async def once() -> Any:
        rpc = JsonRpc(backend._settings, ca_file=None)
        try:
            return await rpc.call(client, creds, operation, params)
        finally:
            rpc.close()  # on the loop: its sockets close with it

    return asyncio.run(once())


def _marks(agent: str) -> tuple[str, frozenset[str]]:
    """A User-Agent without its feature marks, and the marks (a set: their order varies)."""
    found = re.search(r" m/(\S+)", agent)
    marks = frozenset(found.group(1).split(",")) if found else frozenset()
    return re.sub(r" m/\S+", "", agent), marks


CALLS = [
    ("get_secret_value", "GetSecretValue", {"SecretId": "db", "VersionStage": "AWSCURRENT"},
     SECRET_OK),
    ("get_secret_value", "GetSecretValue", {"SecretId": "arn:aws:secretsmanager:eu-west-1:1:"
     "secret:caf\u00e9", "VersionId": "01234567-89ab-cdef-0123-456789abcdef"}, SECRET_OK),
    ("get_parameters", "GetParameters", {"Names": ["/app/p:3", "/app/missing"],
     "WithDecryption": True}, PARAMETERS_OK),
]


@pytest.mark.parametrize(("method", "operation", "params", "reply"), CALLS,
                         ids=["secret", "secret-arn-version", "parameters"])
@pytest.mark.usefixtures("frozen_clock")
def test_the_signed_request_is_botocores(
    backend: AwsBackend, method: str, operation: str, params: dict[str, Any], reply: bytes,
) -> None:
    with raw_server(always(answer(200, reply))) as server:
        service = "secretsmanager" if operation == "GetSecretValue" else "ssm"
        client: Any = _client(backend, service, server.url + "/")
        theirs, their_body = _botocore_request(client, method, **params)
        got = _ours(backend, client, operation, dict(params))
        request_line, ours, our_body = _received(server.requests[-1])
        read = getattr(client, method)(**params)  # the same answer, read by botocore
    assert request_line == "POST / HTTP/1.1"
    assert our_body == their_body
    assert ours.pop("Host") == f"127.0.0.1:{server.port}"
    # Fresh per call in both; the rest is fixed by the call, the clock and the client.
    assert re.fullmatch(r"[0-9a-f-]{36}", ours.pop("amz-sdk-invocation-id"))
    theirs.pop("amz-sdk-invocation-id")
    our_agent, their_agent = ours.pop("User-Agent"), theirs.pop("User-Agent")
    assert _marks(our_agent) == _marks(their_agent)
    assert ours == theirs
    assert "Signature=" in ours["Authorization"] and ours["X-Amz-Date"] == "20261205T164000Z"
    # And the answer reads as botocore reads it (blobs decoded, timestamps, lists).
    read.pop("ResponseMetadata")
    assert got == read


ERRORS = {
    "not-found": (answer(400, json.dumps({
        "__type": "ResourceNotFoundException",
        "message": "Secrets Manager can't find the specified secret."}).encode(),
        "x-amzn-RequestId: r-1"), NotFound, "ObjectNotFound"),
    "denied": (answer(400, json.dumps({
        "__type": "com.amazonaws.secretsmanager#AccessDeniedException",
        "Message": "User is not authorized to perform secretsmanager:GetSecretValue"}).encode()),
        PermissionDenied, "AccessDenied"),
    "throttled": (answer(400, b'{"__type":"ThrottlingException","message":"Rate exceeded"}',
                         "Retry-After: 3"), Unavailable, "Throttled"),
    "throttled-429": (answer(429, b'{"__type":"ThrottlingException:http://x/","message":"slow"}',
                             "Retry-After: 2"), Unavailable, "Throttled"),
    "html-502": (answer(502, b"<html><body>Bad Gateway</body></html>",
                        "Content-Type: text/html", "Retry-After: 4"),
                 Unavailable, "BackendUnavailable"),
    "html-403": (answer(403, b"<html>Forbidden by the proxy</html>"),
                 PermissionDenied, "AccessDenied"),
    "empty-503": (answer(503, b""), Unavailable, "BackendUnavailable"),
}


@pytest.mark.parametrize("case", ERRORS.values(), ids=ERRORS.keys())
def test_an_error_answer_is_botocores_error(
    backend: AwsBackend, case: tuple[bytes, type[Exception], str]
) -> None:
    reply, kind, code = case
    params = {"SecretId": "db"}
    with raw_server(always(reply)) as server:
        client: Any = _client(backend, "secretsmanager", server.url)
        with pytest.raises(Exception) as theirs:
            client.get_secret_value(**params)
        with pytest.raises(Exception) as ours:
            _ours(backend, client, "GetSecretValue", params)
    assert type(ours.value) is type(theirs.value)
    if isinstance(ours.value, botocore.exceptions.ClientError):
        assert isinstance(theirs.value, botocore.exceptions.ClientError)
        mine, botos = ours.value.response, theirs.value.response
        assert mine["Error"] == botos["Error"]
        for key in ("HTTPStatusCode", "RequestId"):
            assert mine["ResponseMetadata"].get(key) == botos["ResponseMetadata"].get(key)
        assert (mine["ResponseMetadata"]["HTTPHeaders"].get("retry-after")
                == botos["ResponseMetadata"]["HTTPHeaders"].get("retry-after"))
    subject = "object 'db' (secret 'db' in eu-west-1)"
    err = errors.translate(ours.value, subject=subject, operation="GetSecretValue")
    same = errors.translate(theirs.value, subject=subject, operation="GetSecretValue")
    assert type(err) is kind and err.code == code, err
    assert (type(err), err.code, str(err)) == (type(same), same.code, str(same))
    assert getattr(err, "retry_after", None) == getattr(same, "retry_after", None)
    if "Retry-After" in reply.decode("latin-1"):
        assert getattr(err, "retry_after", None) is not None


@pytest.mark.parametrize("body", [b"not json", b"[1,2]", b'"x"', b""],
                         ids=["not-json", "list", "string", "empty"])
def test_an_unusable_2xx_is_unavailable_and_never_quoted(backend: AwsBackend, body: bytes) -> None:
    with raw_server(always(answer(200, body))) as server:
        client: Any = _client(backend, "secretsmanager", server.url)
        with pytest.raises(UnusableAnswer) as caught:
            _ours(backend, client, "GetSecretValue", {"SecretId": "db"})
    err = errors.translate(caught.value, subject="object 'db'", operation="GetSecretValue")
    assert type(err) is Unavailable and "not a usable answer" in str(err)
    assert body.decode() not in str(err) or not body


def test_invalid_arguments_are_refused_as_botocore_refuses_them(backend: AwsBackend) -> None:
    with raw_server(always(answer(200, SECRET_OK))) as server:
        client: Any = _client(backend, "secretsmanager", server.url)
        with pytest.raises(botocore.exceptions.ParamValidationError):
            _ours(backend, client, "GetSecretValue", {"SecretId": ""})
        assert server.requests == []  # nothing was sent


def test_a_header_http_cannot_carry_is_the_providers_setup(backend: AwsBackend) -> None:
    with raw_server(always(answer(200, SECRET_OK))) as server:
        client: Any = _client(backend, "secretsmanager", server.url)
        bad = Credentials("AKID", "secret", "tok\r\nX-Evil: 1", 0.0)
        with pytest.raises(errors.UnsendableRequest) as caught:
            _ours(backend, client, "GetSecretValue", {"SecretId": "db"}, bad)
        assert server.requests == []
    err = errors.translate(caught.value, subject="object 'db'", operation="GetSecretValue")
    assert type(err) is InvalidRequest and err.code == "ProviderMisconfigured"
    assert "tok" not in str(err)


def _bare(cls: type[BaseException]) -> BaseException:
    exc = cls.__new__(cls)
    exc.args = ("boom",)
    return exc


HTTP1 = [c for c in vars(http1).values()
         if isinstance(c, type) and issubclass(c, Exception) and c.__module__ == http1.__name__]
TRANSPORT = [
    *[_bare(c) for c in HTTP1], UnusableAnswer("is not JSON"), errors.UnsendableRequest(),
    ssl.SSLError("EOF"), ssl.SSLEOFError("EOF occurred in violation of protocol"),
    ssl.SSLCertVerificationError("certificate verify failed"), ConnectionResetError(),
    ConnectionRefusedError(), TimeoutError(), OSError("no route"),
    socket.gaierror(-2, "Name or service not known"),
]


@pytest.mark.parametrize("exc", TRANSPORT, ids=lambda e: type(e).__name__)
def test_every_failure_of_the_exchange_is_mapped(exc: BaseException) -> None:
    err = errors.translate(exc, subject="object 'db'", operation="GetSecretValue")
    assert_mapped(err, type(exc), "object 'db'")
    assert "agent" not in str(err)


def test_the_walk_found_http1s_classes() -> None:
    assert {"RemoteClosed", "BadAnswer", "AnswerTooLarge", "ProxyRefused"} <= {
        c.__name__ for c in HTTP1}


@pytest.mark.parametrize(
    ("exc", "kind", "code"),
    [
        (http1.RemoteClosed(received=True), Unavailable, "BackendUnavailable"),
        (http1.BadAnswer("not HTTP"), Unavailable, "BackendUnavailable"),
        (http1.ProxyRefused("407"), Unavailable, "BackendUnavailable"),
        (http1.AnswerTooLarge(16), InvalidRequest, "BackendRejected"),
        (ssl.SSLCertVerificationError("certificate verify failed"), Unavailable,
         "BackendUnavailable"),
        (socket.gaierror(-2, "Name or service not known"), Unavailable, "BackendUnavailable"),
        (errors.UnsendableRequest(), InvalidRequest, "ProviderMisconfigured"),
    ],
    ids=["cut", "not-http", "proxy-refused", "too-large", "tls-verify", "no-such-host",
         "unsendable"],
)
def test_exchange_failures(exc: BaseException, kind: type[Exception], code: str) -> None:
    err = errors.translate(exc, subject="object 'db'", operation="GetSecretValue")
    assert type(err) is kind and err.code == code, err
    assert str(err).startswith(f"{code}: object 'db': GetSecretValue")


def test_one_pool_per_endpoint_shared_by_identities(backend: AwsBackend) -> None:
    """Two identities, one endpoint: one connection, each request with its own credentials."""
    with raw_server(always(answer(200, SECRET_OK))) as server:
        other = Credentials("AKIDOTHER", "other-secret", "other-tok", 0.0)
        first: Any = _client(backend, "secretsmanager", server.url)
        second: Any = _client(backend, "secretsmanager", server.url, other)

        async def both() -> None:
            rpc = JsonRpc(backend._settings, ca_file=None)
            await rpc.call(first, CREDS, "GetSecretValue", {"SecretId": "db"})
            await rpc.call(second, other, "GetSecretValue", {"SecretId": "db"})
            rpc.close()

        asyncio.run(both())
        assert server.accepted == 1
        sent = [_received(r)[1] for r in server.requests]
    assert "Credential=AKIDEXAMPLE/" in sent[0]["Authorization"]
    assert sent[0]["X-Amz-Security-Token"] == "session-tok"
    assert "Credential=AKIDOTHER/" in sent[1]["Authorization"]
    assert sent[1]["X-Amz-Security-Token"] == "other-tok"


@pytest.mark.parametrize(
    ("service", "region", "config"),
    [
        ("secretsmanager", "eu-west-1", {}),
        ("ssm", "eu-west-1", {}),
        ("secretsmanager", "us-gov-west-1", {"use_fips_endpoint": True}),
        ("secretsmanager", "eu-west-1", {"use_dualstack_endpoint": True}),
        ("ssm", "eu-west-1", {"use_dualstack_endpoint": True}),
        ("ssm", "cn-north-1", {}),
    ],
    ids=["sm", "ssm", "sm-fips", "sm-dualstack", "ssm-dualstack", "ssm-china"],
)
def test_the_endpoint_is_the_one_botocore_sends_to(
    backend: AwsBackend, service: str, region: str, config: dict[str, bool]
) -> None:
    """Endpoint rules (FIPS, dual-stack, partitions) resolve as botocore resolves them."""
    import botocore.config

    backend._config = backend._config.merge(botocore.config.Config(**config))
    client: Any = backend._new_client(service, region, CREDS)
    _MADE.append(client)
    seen: dict[str, str] = {}

    class Sent(Exception):
        pass

    def capture(request: Any, **_: Any) -> None:
        seen["url"] = request.url
        seen["auth"] = request.headers["Authorization"].decode()
        raise Sent

    client.meta.events.register("before-send", capture)
    operation = "GetSecretValue" if service == "secretsmanager" else "GetParameters"
    with pytest.raises(Sent):
        if service == "secretsmanager":
            client.get_secret_value(SecretId="db")
        else:
            client.get_parameters(Names=["/p"])
    route = jsonrpc._route(client, operation)
    assert route.url == seen["url"]
    assert f"/{route.region}/{route.signing_name}/aws4_request" in seen["auth"]


@pytest.mark.usefixtures("frozen_clock")
@pytest.mark.parametrize("token", ["session-tok", None], ids=["session", "long-term-keys"])
def test_the_shortcut_signature_is_botocores_sigv4(token: str | None) -> None:
    """provider.backends.aws.sigv4 against botocore's SigV4Auth for the same request."""
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials

    from provider.backends.aws import sigv4

    headers = {"X-Amz-Target": "secretsmanager.GetSecretValue",
               "Content-Type": "application/x-amz-json-1.1", "User-Agent": "Boto3/1  x"}
    body = b'{"SecretId": "prod/db"}'
    for host in ("secretsmanager.eu-west-1.amazonaws.com", "127.0.0.1:4566"):
        scheme = "https" if "amazonaws" in host else "http"
        theirs = botocore.awsrequest.AWSRequest("POST", f"{scheme}://{host}/", dict(headers), body)
        botocore.auth.SigV4Auth(
            botocore.credentials.ReadOnlyCredentials(CREDS.access_key, CREDS.secret_key, token),
            "secretsmanager", "eu-west-1",
        ).add_auth(theirs)
        ours = sigv4.sign_post(
            access_key=CREDS.access_key, secret_key=CREDS.secret_key, token=token,
            region="eu-west-1", service="secretsmanager", host=host, headers=dict(headers),
            body=body,
        )
        expected = {k: v for k, v in theirs.headers.items() if k not in headers}
        assert ours == expected
