"""Key Vault answers that are not what the API promises, and Retry-After as an HTTP-date.

The Key Vault stand-in answers the next GETs with a chosen body. A 200 that is
empty, not JSON, the wrong JSON type, cut short, or a secret without ``value``
or ``id``, a key without its JWK or its type, a certificate without ``id``: all
retried, then UNAVAILABLE, never an empty file or an empty version, never
INTERNAL or INVALID_ARGUMENT. Messages never quote the value or the pod's token.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

import grpc
import pytest

from tests.azure.conftest import POD_TOKEN, Seeded, wi_attrs
from tests.support.running import RunningProvider, files_of, versions_of

pytestmark = pytest.mark.azure

SECRET = "objectName: plain\nobjectType: secret"
KEY = "objectName: rsa-key\nobjectType: key"
CERT = "objectName: pem-cert\nobjectType: cert"
ANY_KIND: dict[str, Any] = {
    "empty-object": {},
    "not-json": b"<html>proxy</html>",
    "json-list": [1, 2, 3],
    "json-string": "x",
    "cut-in-half": b'{"value": "thr',
}
BY_KIND: dict[str, tuple[str, str, dict[str, Any]]] = {
    "secret": (SECRET, "/secrets/plain/", {
        **ANY_KIND,
        "no-value": {"id": "https://v/secrets/plain/0123abcd", "attributes": {"enabled": True}},
        "no-id": {"value": "v", "attributes": {"enabled": True}},
    }),
    "key": (KEY, "/keys/rsa-key/", {
        **ANY_KIND,
        "no-key": {"attributes": {"enabled": True}},
        "no-kty": {"key": {"kid": "https://v/keys/rsa-key/0123abcd", "n": "AQAB", "e": "AQAB"}},
        "no-kid": {"key": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}},
    }),
    "cert": (CERT, "/certificates/pem-cert/", {
        **ANY_KIND,
        "no-id": {"cer": "MIIB", "attributes": {"enabled": True}},
    }),
}
CASES = [
    pytest.param(kind, body, id=f"{kind}-{name}")
    for kind, (_, _, bodies) in BY_KIND.items()
    for name, body in bodies.items()
]


def _gets(seeded: Seeded, path: str, since: int) -> list[int]:
    return [s for m, p, s in seeded.world.vault.requests[since:] if m == "GET" and p == path]


@pytest.mark.parametrize(("kind", "body"), CASES)
def test_unusable_answer_is_retried_then_unavailable(
    provider: RunningProvider, seeded: Seeded, kind: str, body: Any
) -> None:
    item, path, _ = BY_KIND[kind]
    attrs = wi_attrs(item)
    provider.mount(attrs)  # warm: the faults hit the GET, not the token or the challenge
    before = len(seeded.world.vault.requests)
    seeded.world.vault.fail_next(200, body=body, times=50)
    err = provider.mount_error(attrs)
    assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()
    assert err.details().startswith("BackendUnavailable: object "), err.details()
    assert "plain" in err.details() or "rsa-key" in err.details() or "pem-cert" in err.details()
    assert "three" not in err.details() and POD_TOKEN not in err.details()
    assert _gets(seeded, path, before) == [200] * 4  # every attempt of the retry policy


@pytest.mark.parametrize(("kind", "body"), CASES)
def test_one_unusable_answer_then_the_real_one(
    provider: RunningProvider, seeded: Seeded, kind: str, body: Any
) -> None:
    item, path, _ = BY_KIND[kind]
    attrs = wi_attrs(item)
    good = provider.mount(attrs)
    before = len(seeded.world.vault.requests)
    seeded.world.vault.fail_next(200, body=body)
    again = provider.mount(attrs)
    assert files_of(again) == files_of(good) and files_of(good)
    assert versions_of(again) == versions_of(good)
    assert all(v for v in versions_of(again).values())
    assert len(_gets(seeded, path, before)) == 2


def test_retry_after_http_date_is_honoured(provider: RunningProvider, seeded: Seeded) -> None:
    attrs = wi_attrs(SECRET)
    provider.mount(attrs)
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    seeded.world.vault.fail_next(429, {"Retry-After": when})
    started = time.monotonic()
    assert files_of(provider.mount(attrs)) == {"plain": (0o644, b"three")}
    assert time.monotonic() - started >= 0.95  # a date 1-2 s away; backoff alone is ~0.1 s


def test_retry_after_beyond_the_deadline_fails_at_once(
    provider: RunningProvider, seeded: Seeded
) -> None:
    attrs = wi_attrs(SECRET)
    provider.mount(attrs)
    before = len(seeded.world.vault.requests)
    seeded.world.vault.fail_next(429, {"Retry-After": "3600"}, times=10)
    started = time.monotonic()
    err = provider.mount_error(attrs)
    assert time.monotonic() - started < 2.5
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert err.details().startswith("Throttled: ")
    assert _gets(seeded, "/secrets/plain/", before) == [429]
