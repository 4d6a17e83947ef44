"""Unsigned service-account tokens with Kubernetes claims, for backends that do not verify them.

moto, the EKS Pod Identity stand-in and the Azure AD stand-in accept any
token, but the provider checks every token's claims against the request
(provider.identity): ``sub`` names the pod's service account, ``aud`` holds
the audience, ``exp`` lies ahead. OpenBao verifies signatures: its tests use
tests.support.openbao.TokenSigner.
"""

from __future__ import annotations

import base64
import json
import time


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pod_token(
    audience: str | list[str],
    namespace: str = "default",
    service_account: str = "app",
    *,
    ttl: int = 10 * 365 * 86400,
    subject: str | None = None,
) -> str:
    """A JWT-shaped token for ``namespace/service_account`` (``subject`` overrides ``sub``)."""
    claims = {
        "iss": "https://kubernetes.default.svc.cluster.local",
        "sub": subject or f"system:serviceaccount:{namespace}:{service_account}",
        "aud": [audience] if isinstance(audience, str) else audience,
        "exp": int(time.time()) + ttl,
    }
    header = _b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{header}.{body}.{_b64(b'test-signature')}"
