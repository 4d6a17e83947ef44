"""Proof of identity: the pod's token must name the request's service account and audience."""

from __future__ import annotations

import base64
import json
import time

import pytest

from provider.errors import MissingToken, PermissionDenied
from provider.identity import verified_token
from provider.request import parse_mount_request
from tests.support.running import pod_attributes
from tests.support.tokens import pod_token


def _request(token: str | None, *, sa: str = "app", namespace: str = "default",
             audience: str = "vault", expiry: str = "2099-01-01T00:00:00Z") -> object:
    attrs = pod_attributes({}, namespace=namespace, service_account=sa)
    if token is not None:
        attrs["csi.storage.k8s.io/serviceAccount.tokens"] = json.dumps(
            {audience: {"token": token, "expirationTimestamp": expiry}}
        )
    return parse_mount_request(attributes=json.dumps(attrs), secrets="null", permission="420")


def _raw(claims: object) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJSUzI1NiJ9.{body}.c2ln"


def test_a_matching_token_is_returned() -> None:
    token = pod_token("vault")
    assert verified_token(_request(token), "vault") == token  # type: ignore[arg-type]


def test_an_audience_list_or_string_both_work() -> None:
    sub = "system:serviceaccount:default:app"
    for aud in ("vault", ["other", "vault"]):
        token = _raw({"sub": sub, "aud": aud, "exp": time.time() + 60})
        assert verified_token(_request(token), "vault") == token  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("token", "words"),
    [
        (pod_token("vault", "default", "bob"), "another subject"),
        (pod_token("vault", "team-b", "app"), "another subject"),
        (pod_token("vault", subject="system:sa"), "another subject"),
        (pod_token("not-vault"), "audience"),
        (pod_token("vault", ttl=-5), "expired"),
        ("not-a-jwt", "not a JWT"),
        ("a.%%%.c", "unreadable"),
        (_raw([1, 2]), "unreadable"),
        ("a." + "x" * 20000 + ".c", "not a JWT"),
    ],
)
def test_mismatched_tokens_are_permission_denied(token: str, words: str | None) -> None:
    with pytest.raises(PermissionDenied) as caught:
        verified_token(_request(token), "vault")  # type: ignore[arg-type]
    assert caught.value.code == "TokenMismatch"
    if words:
        assert words in caught.value.message
    assert token not in caught.value.message


def test_without_exp_the_drivers_expiry_counts() -> None:
    token = _raw({"sub": "system:serviceaccount:default:app", "aud": ["vault"]})
    request = _request(token, expiry="2000-01-01T00:00:00Z")
    with pytest.raises(PermissionDenied, match="expired"):
        verified_token(request, "vault")  # type: ignore[arg-type]
    assert verified_token(_request(token), "vault") == token  # type: ignore[arg-type]


def test_no_token_is_missing_token_not_denied() -> None:
    with pytest.raises(MissingToken):
        verified_token(_request(None), "vault")  # type: ignore[arg-type]
