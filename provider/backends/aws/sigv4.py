"""AWS Signature Version 4 for the two JSON reads: botocore's signature, ~6x cheaper.

botocore's ``SigV4Auth`` is general (query strings, S3's payload rules, its
header objects) and derives its signing key (four HMACs) again for every
request: ~90 us of a ~570 us Secrets Manager read on the event loop (issue
16; bench/profile.py aws). GetSecretValue and GetParameters are always a POST
of a JSON body to ``/`` without a query, with a handful of headers, so the
canonical request has one fixed shape, and the signing key is kept per
secret key, day, region and service. The clock is botocore's own
(``botocore.auth.get_current_datetime``). tests/aws/test_jsonrpc.py checks
that every signed header, ``Authorization`` included, is byte-identical to
what botocore's client sends at a frozen instant; a request of any other
shape (an endpoint URL with a path or a query) is signed by botocore
(``provider.backends.aws.jsonrpc``).
"""

from __future__ import annotations

import hashlib
import hmac

import botocore.auth

# Headers botocore never signs (its SIGNED_HEADERS_BLACKLIST, lower-cased).
_UNSIGNED = frozenset(h.lower() for h in botocore.auth.SIGNED_HEADERS_BLACKLIST)
# Signing keys kept: (secret key, day, region, service) -> key. A key is a
# derivative of the secret, held only as long as the credentials themselves
# are (the identity cache holds those); beyond this the table starts again.
MAX_KEYS = 1024
_keys: dict[tuple[str, str, str, str], bytes] = {}


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def _signing_key(secret_key: str, day: str, region: str, service: str) -> bytes:
    index = (secret_key, day, region, service)
    key = _keys.get(index)
    if key is None:
        key = _hmac(_hmac(_hmac(_hmac(
            f"AWS4{secret_key}".encode(), day), region), service), "aws4_request")
        if len(_keys) >= MAX_KEYS:
            _keys.clear()
        _keys[index] = key
    return key


def sign_post(
    *,
    access_key: str,
    secret_key: str,
    token: str | None,
    region: str,
    service: str,
    host: str,
    headers: dict[str, str],
    body: bytes,
) -> dict[str, str]:
    """The headers SigV4 adds to ``POST /`` of ``body`` with ``headers`` sent to ``host``.

    ``X-Amz-Date``, ``X-Amz-Security-Token`` (with a session token) and
    ``Authorization``, as botocore's ``SigV4Auth.add_auth`` sets them.
    """
    # botocore's clock (its stubs do not name it): the instant botocore would sign at.
    now = botocore.auth.get_current_datetime()  # type: ignore[attr-defined]
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    signed = {
        name.lower(): " ".join(value.split())
        for name, value in headers.items()
        if name.lower() not in _UNSIGNED
    }
    signed["host"] = host
    signed["x-amz-date"] = stamp
    if token:
        signed["x-amz-security-token"] = token
    names = sorted(signed)
    signed_names = ";".join(names)
    canonical = "\n".join([
        "POST", "/", "",
        *(f"{name}:{signed[name]}" for name in names), "",
        signed_names,
        hashlib.sha256(body).hexdigest(),
    ])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = (
        f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n"
        f"{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}"
    )
    signature = hmac.new(
        _signing_key(secret_key, day, region, service), to_sign.encode("utf-8"), hashlib.sha256
    ).hexdigest()
    added = {"X-Amz-Date": stamp}
    if token:
        added["X-Amz-Security-Token"] = token
    added["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
        f"SignedHeaders={signed_names}, Signature={signature}"
    )
    return added
