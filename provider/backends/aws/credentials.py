"""AWS credentials as the pod, cached per pod identity until shortly before expiry.

IRSA: the pod's token for ``sts.amazonaws.com`` -> STS AssumeRoleWithWebIdentity.
Pod Identity: the pod's token for ``pods.eks.amazonaws.com`` -> the node's EKS
Pod Identity agent. The AWS provider calls STS on every mount; STS quotas cannot
be raised and clusters hit throttling at a few calls per second, so credentials
(and the SDK clients built on them) are kept per identity — the pod's namespace
and service account plus the role — and never shared across identities.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from provider.cache import Cache
from provider.codes import ErrorCode
from provider.errors import PermissionDenied, Unavailable

STS_AUDIENCE = "sts.amazonaws.com"
POD_IDENTITY_AUDIENCE = "pods.eks.amazonaws.com"
ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
POD_IDENTITY_IPV4 = "http://169.254.170.23/v1/credentials"
POD_IDENTITY_IPV6 = "http://[fd00:ec2::23]/v1/credentials"
# Refresh this long before expiry, so no mount starts with nearly dead credentials.
REFRESH_MARGIN = 300.0
_SESSION_NAME = re.compile(r"[^\w+=,.@-]")


@dataclass(frozen=True)
class Credentials:
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expires_at: float  # time.time() seconds


def session_name(namespace: str, service_account: str) -> str:
    """A RoleSessionName that shows up in CloudTrail: who mounted."""
    return _SESSION_NAME.sub("-", f"polysecret-{namespace}-{service_account}")[:64]


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    text = str(value).replace("Z", "+00:00")
    return datetime.fromisoformat(text).timestamp()


def pod_identity_credentials(endpoint: str, token: str, timeout: float = 5.0) -> Credentials:
    """Ask the EKS Pod Identity agent for the pod's credentials."""
    request = urllib.request.Request(endpoint, headers={"Authorization": token})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        # The error holds the open response: close it, or every refusal leaks a socket.
        exc.close()
        if 400 <= exc.code < 500 and exc.code != 429:
            raise PermissionDenied(
                f"the EKS Pod Identity agent refused the pod's token (HTTP {exc.code}); "
                "check the pod identity association of its service account",
                code=ErrorCode.AuthFailed,
            ) from None
        raise Unavailable(f"the EKS Pod Identity agent answered HTTP {exc.code}") from None
    except (OSError, ValueError) as exc:
        raise Unavailable(
            f"cannot reach the EKS Pod Identity agent at {endpoint} ({type(exc).__name__})"
        ) from None
    try:
        return Credentials(
            access_key=body["AccessKeyId"],
            secret_key=body["SecretAccessKey"],
            session_token=body["Token"],
            expires_at=_epoch(body["Expiration"]),
        )
    except (KeyError, TypeError, ValueError):
        raise Unavailable("the EKS Pod Identity agent sent an unreadable answer") from None


def sts_credentials(answer: Any, role: str) -> Credentials:
    """The credentials of an AssumeRoleWithWebIdentity answer; Unavailable if it has none.

    botocore reads an STS answer without its Credentials element as a plain
    ``{}``: that answer is unusable (a proxy or a fault in between), never a
    denial. Its content is never quoted (it may hold keys).
    """
    creds = answer.get("Credentials") if isinstance(answer, dict) else None
    found: Credentials | None = None
    if isinstance(creds, dict):
        try:
            found = Credentials(
                access_key=str(creds["AccessKeyId"]),
                secret_key=str(creds["SecretAccessKey"]),
                session_token=str(creds["SessionToken"]),
                expires_at=_epoch(creds["Expiration"]),
            )
        except (KeyError, TypeError, ValueError):
            found = None
    if found is None or not (found.access_key and found.secret_key and found.session_token):
        raise Unavailable(
            f"role {role!r}: AWS's AssumeRoleWithWebIdentity answer holds no usable "
            "credentials; not a usable answer"
        )
    return found


# Identities kept, and SDK clients per identity: a class may name any region
# and a failover region, so each identity keeps at most SecretsManager and SSM
# in two regions; each client costs ~220 KiB, so 256 identities stay < 250 MiB.
MAX_IDENTITIES = 256
MAX_CLIENTS_PER_IDENTITY = 4
# STS clients (unsigned, shared by all identities) per region named by a class.
MAX_STS_CLIENTS = 16


def close_client(_key: object, client: Any) -> None:
    """Release an evicted SDK client's connection pool (a later use reconnects)."""
    close = getattr(client, "close", None)
    if close is not None:
        close()


def identity_cache(clock: Callable[[], float] = time.time) -> Cache[tuple[str, ...], AwsIdentity]:
    """Credentials per identity, until :data:`REFRESH_MARGIN` before they expire.

    Keys always start with the pod's namespace and service account. Evicting an
    identity closes its SDK clients.
    """
    return Cache(
        "aws.credentials",
        max_entries=MAX_IDENTITIES,
        expiry=lambda e: e.credentials.expires_at - REFRESH_MARGIN - clock(),
        on_evict=lambda _k, e: e.close(),
    )


class AwsIdentity:
    """Credentials of one identity and the SDK clients made with them (bounded)."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self._clients: Cache[tuple[str, str], Any] = Cache(
            "aws.clients", max_entries=MAX_CLIENTS_PER_IDENTITY, on_evict=close_client
        )
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AwsIdentity(clients={len(self._clients)})"

    def client(self, service: str, region: str, make: Callable[[Credentials], Any]) -> Any:
        key = (service, region)
        with self._lock:
            found = self._clients.peek(key)
            if found is None:
                found = self._clients.put(key, make(self.credentials))
            return found

    def clients(self) -> int:
        return len(self._clients)

    def close(self) -> None:
        self._clients.clear()
