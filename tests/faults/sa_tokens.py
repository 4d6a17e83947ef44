"""Unsigned service-account tokens whose claims match the pod they are sent for.

moto and the Azure AD stand-in accept any token, but a provider that checks a
token's claims against the request (issue 10, item 12) must see ``sub`` name
the pod's service account, ``aud`` its audience and ``exp`` ahead; a fixed
token shared by several service accounts would be refused before any backend
call. (OpenBao verifies signatures: it gets tests.support.openbao.TokenSigner's.)
"""

from __future__ import annotations

import base64
import json
import time


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sa_token(audience: str, service_account: str = "app", namespace: str = "default") -> str:
    claims = {
        "iss": "https://kubernetes.default.svc.cluster.local",
        "sub": f"system:serviceaccount:{namespace}:{service_account}",
        "aud": [audience],
        "exp": int(time.time()) + 10 * 365 * 86400,
    }
    header = _b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{header}.{body}.{_b64(b'fault-suite-signature')}"
