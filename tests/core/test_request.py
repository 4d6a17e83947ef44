"""provider.request: both driver lines' MountRequest shapes."""

from __future__ import annotations

import json

import pytest

from provider.errors import InvalidRequest, MissingToken
from provider.request import TOKENS, parse_mount_request, parse_permission

TOKENS_JSON = json.dumps(
    {
        "sts.amazonaws.com": {
            "token": "tok-sts-123",
            "expirationTimestamp": "2099-01-01T00:00:00Z",
        },
        "": {"token": "tok-default-456", "expirationTimestamp": "bad-date"},
    }
)
POD = {
    "csi.storage.k8s.io/pod.name": "p",
    "csi.storage.k8s.io/pod.namespace": "ns",
    "csi.storage.k8s.io/pod.uid": "u",
    "csi.storage.k8s.io/serviceAccount.name": "sa",
}


def parse(
    attributes: object,
    secrets: str = "null",
    permission: str = "420",
):  # type: ignore[no-untyped-def]
    return parse_mount_request(
        attributes=attributes if isinstance(attributes, str) else json.dumps(attributes),
        secrets=secrets,
        permission=permission,
    )


@pytest.mark.parametrize(
    "secrets", ["null", "{}", "", " null "], ids=["null", "empty-object", "empty", "spaced"]
)
def test_no_secrets(secrets: str) -> None:
    assert dict(parse(POD, secrets).secrets) == {}


def test_pod_and_tokens() -> None:
    req = parse({**POD, TOKENS: TOKENS_JSON, "x": "1"})
    assert req.pod.identity == ("ns", "sa") and req.pod.describe() == "ns/p"
    assert req.token_for("sts.amazonaws.com") == "tok-sts-123"
    assert req.tokens["sts.amazonaws.com"].expires is not None
    assert req.tokens[""].expires is None
    assert req.default_mode == 0o644
    assert "tok-sts-123" not in repr(req)


def test_tokens_from_secrets_are_not_credentials() -> None:
    req = parse(POD, json.dumps({TOKENS: TOKENS_JSON, "clientid": "c"}))
    assert req.token_for("sts.amazonaws.com") == "tok-sts-123"
    assert dict(req.secrets) == {"clientid": "c"}
    assert set(req.secret_values()) == {"tok-sts-123", "tok-default-456", "c"}


def test_attributes_win_over_secrets_for_tokens() -> None:
    other = json.dumps({"sts.amazonaws.com": {"token": "from-secrets"}})
    req = parse({**POD, TOKENS: TOKENS_JSON}, json.dumps({TOKENS: other}))
    assert req.token_for("sts.amazonaws.com") == "tok-sts-123"


def test_missing_token_message() -> None:
    req = parse({**POD, TOKENS: TOKENS_JSON})
    with pytest.raises(MissingToken) as info:
        req.token_for("vault", parameter="audience")
    text = str(info.value)
    assert text.startswith("MissingToken: ")
    assert "'vault'" in text and "tokenRequests" in text and "'sts.amazonaws.com'" in text
    assert "tok-sts" not in text


def test_go_escapes_are_parsed() -> None:
    req = parse('{"objects": "a \\u003c b \\u0026 c \\u003e"}')
    assert req.attributes["objects"] == "a < b & c >"


@pytest.mark.parametrize(
    ("attributes", "secrets", "needle"),
    [
        pytest.param("{bad", "null", "attributes is not valid JSON", id="attributes-json"),
        pytest.param("[]", "null", "attributes must be a JSON object", id="attributes-array"),
        pytest.param(
            '{"a": 1}', "null", "value of key 'a' must be a string", id="attributes-non-string"
        ),
        pytest.param("{}", '"s3cret"', "secrets must be a JSON object", id="secrets-string"),
        pytest.param(
            json.dumps({TOKENS: "[1]"}), "null", "must be a JSON object", id="tokens-array"
        ),
        pytest.param(
            json.dumps({TOKENS: '{"aud": {}}'}), "null", "no string 'token'", id="tokens-no-token"
        ),
    ],
)
def test_invalid(attributes: str, secrets: str, needle: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse(attributes, secrets)
    assert needle in str(info.value)
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "mode"),
    [("420", 0o644), ("384", 0o600), ("0", 0), ("511", 0o777), ("", 0o644)],
)
def test_permission(text: str, mode: int) -> None:
    assert parse_permission(text) == mode


@pytest.mark.parametrize("text", ["512", "-1", "true", '"420"', "4.2", "abc", "0644x"])
def test_permission_invalid(text: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_permission(text)
