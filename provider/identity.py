"""Proof of identity: the pod's token must name the service account the request names.

Every cache the provider keeps is keyed by the pod's namespace and service
account as the driver's attributes name them. Those attributes and the token
travel side by side, so before any cached credential or object is used (or a
fresh one stored under that key), the token for the backend's audience must be
present, unexpired, and its claims must match the request: ``sub`` is
``system:serviceaccount:<namespace>:<name>`` of the request and ``aud``
contains the audience. Otherwise a request naming ``alice`` but carrying bob's
token (or garbage) would be served alice's cached values, and a login with
alice's token would be cached under ``carol``.

Only the payload is decoded: no network, no signature check. That is enough
because (1) only the driver, a node-local process, can reach our Unix socket,
and kubelet mints these tokens for exactly the pod it mounts for, so the check
guards against a mix-up, not a forger; and (2) the backend verifies the
signature on every real login (STS, Vault's kubernetes/jwt auth, Azure AD),
and a cached credential was obtained by such a login for this very
namespace/service account, whose tokens this check has already matched.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from typing import Any

from provider.codes import ErrorCode
from provider.errors import PermissionDenied
from provider.request import MountRequest

SUBJECT_PREFIX = "system:serviceaccount:"
# Largest payload we decode: a Kubernetes token is ~1 KiB; anything huge is not one.
_MAX_TOKEN = 16 * 1024


def _denied(reason: str, audience: str) -> PermissionDenied:
    # Never quote the token or its claims: the reason names what is wrong only.
    return PermissionDenied(
        f"the pod's service account token for audience {audience!r} {reason}",
        code=ErrorCode.TokenMismatch,
    )


def _claims(token: str, audience: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(token) > _MAX_TOKEN or len(parts) != 3:
        raise _denied("is not a JWT", audience)
    payload = parts[1]
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        raise _denied("has an unreadable payload", audience) from None
    if not isinstance(claims, dict):
        raise _denied("has an unreadable payload", audience)
    return claims


def verified_token(
    request: MountRequest,
    audience: str,
    *,
    parameter: str = "audience",
    clock: Callable[[], float] = time.time,
) -> str:
    """The pod's token for ``audience``, once its claims match the request.

    Raises MissingToken when there is none (INVALID_ARGUMENT, with how to add
    the audience) and PermissionDenied when it is expired or names another
    service account or audience.
    """
    token = request.token_for(audience, parameter=parameter)
    claims = _claims(token, audience)
    pod = request.pod
    want = f"{SUBJECT_PREFIX}{pod.namespace}:{pod.service_account}"
    if claims.get("sub") != want:
        raise _denied(
            f"is not for service account {pod.namespace}/{pod.service_account} "
            "(its 'sub' claim names another subject)",
            audience,
        )
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if audience not in audiences:
        raise _denied("was not issued for that audience (its 'aud' claim)", audience)
    expires = _expiry(claims, request, audience)
    if expires is None:
        raise _denied("has no expiry", audience)
    if expires <= clock():
        raise _denied("has expired", audience)
    return token


def _expiry(claims: dict[str, Any], request: MountRequest, audience: str) -> float | None:
    """The ``exp`` claim, or else the expiry the driver sent beside the token."""
    exp = claims.get("exp")
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        return float(exp)
    sent = request.tokens.get(audience)
    if sent is not None and sent.expires is not None:
        return sent.expires.timestamp()
    return None
