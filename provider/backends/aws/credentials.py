"""AWS credentials as the pod, cached per pod identity until shortly before expiry.

IRSA: the pod's token for ``sts.amazonaws.com`` -> STS AssumeRoleWithWebIdentity.
Pod Identity: the pod's token for ``pods.eks.amazonaws.com`` -> the node's EKS
Pod Identity agent. Then, with ``assumeRoleArn``, sts:AssumeRole with those
credentials (a chained, often cross-account role), cached the same way.

The AWS provider calls STS on every mount; STS quotas cannot be raised and
clusters hit throttling at a few calls per second, so credentials (and the SDK
clients built on them) are kept per identity — the pod's namespace and service
account plus the role (and the chained role) — and never shared across identities.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from provider.backends.aws import AwsSettings, errors
from provider.backends.aws.config import AwsPlan, ChainedRole
from provider.backends.aws.errors import agent_refused
from provider.cache import Cache
from provider.codes import ErrorCode
from provider.errors import (
    InvalidParameters,
    NotFound,
    PermissionDenied,
    Unavailable,
    translating,
)
from provider.identity import verified_token

if TYPE_CHECKING:
    from provider.backends.base import BackendServices, FetchContext
    from provider.kube import KubeClient

STS_AUDIENCE = "sts.amazonaws.com"
POD_IDENTITY_AUDIENCE = "pods.eks.amazonaws.com"
ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
POD_IDENTITY_IPV4 = "http://169.254.170.23/v1/credentials"
POD_IDENTITY_IPV6 = "http://[fd00:ec2::23]/v1/credentials"
# The agent answers a few hundred bytes; more is not its answer.
MAX_AGENT_ANSWER = 64 * 1024
# Refresh this long before expiry, so no mount starts with nearly dead credentials.
REFRESH_MARGIN = 300.0
_SESSION_NAME = re.compile(r"[^\w+=,.@-]")


# What botocore answers: its JSON, parsed (contents are checked, never trusted).
Answer = Mapping[str, object]


class AwsClient(Protocol):
    """The botocore client methods this backend calls (botocore builds clients untyped)."""

    def get_secret_value(self, **kwargs: str) -> Answer: ...

    def list_secrets(self, **kwargs: object) -> Answer: ...

    def get_parameters(self, **kwargs: object) -> Answer: ...

    def get_parameters_by_path(self, **kwargs: object) -> Answer: ...

    def assume_role_with_web_identity(self, **kwargs: str) -> Answer: ...

    def assume_role(self, **kwargs: object) -> Answer: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Credentials:
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expires_at: float  # time.time() seconds


def session_name(namespace: str, service_account: str) -> str:
    """A RoleSessionName that shows up in CloudTrail: who mounted."""
    return _SESSION_NAME.sub("-", f"polysecret-{namespace}-{service_account}")[:64]


def _epoch(value: object) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    text = str(value).replace("Z", "+00:00")
    return datetime.fromisoformat(text).timestamp()


def pod_identity_credentials(
    endpoints: Sequence[str], token: str, timeout: float = 5.0
) -> Credentials:
    """Ask the EKS Pod Identity agent for the pod's credentials, at each address in turn.

    ``preferredAddressType: auto`` gives two addresses: the next is tried when
    one fails transiently, never after a refusal. The agent's HTTP statuses are
    mapped by :func:`provider.backends.aws.errors.translate` (``ctx.call``).
    """
    for endpoint in endpoints[:-1]:
        try:
            return _ask_agent(endpoint, token, timeout)
        except (OSError, Unavailable) as exc:
            if agent_refused(exc):
                raise
    return _ask_agent(endpoints[-1], token, timeout)


def _ask_agent(endpoint: str, token: str, timeout: float) -> Credentials:
    request = urllib.request.Request(endpoint, headers={"Authorization": token})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            data = response.read(MAX_AGENT_ANSWER)
    except urllib.error.HTTPError as exc:
        # The error holds the open response: close it, or every refusal leaks a socket.
        exc.close()
        raise
    try:
        body = json.loads(data)
        return Credentials(
            access_key=body["AccessKeyId"],
            secret_key=body["SecretAccessKey"],
            session_token=body["Token"],
            expires_at=_epoch(body["Expiration"]),
        )
    except (KeyError, TypeError, ValueError):
        raise Unavailable("the EKS Pod Identity agent sent an unreadable answer") from None


def sts_credentials(answer: Answer, role: str, operation: str) -> Credentials:
    """The credentials of an AssumeRoleWithWebIdentity answer; Unavailable if it has none.

    botocore reads an STS answer without its Credentials element as a plain
    ``{}``: that answer is unusable (a proxy or a fault in between), never a
    denial. Its content is never quoted (it may hold keys).
    """
    creds = answer.get("Credentials") if isinstance(answer, Mapping) else None
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
            f"role {role!r}: AWS's {operation} answer holds no usable "
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


def close_client(_key: object, client: AwsClient) -> None:
    """Release an evicted SDK client's connection pool (a later use reconnects)."""
    client.close()


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
        self._clients: Cache[tuple[str, str], AwsClient] = Cache(
            "aws.clients", max_entries=MAX_CLIENTS_PER_IDENTITY, on_evict=close_client
        )
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AwsIdentity(clients={len(self._clients)})"

    def cached(self, service: str, region: str) -> AwsClient | None:
        return self._clients.peek((service, region))

    def client(
        self, service: str, region: str, make: Callable[[Credentials], AwsClient]
    ) -> AwsClient:
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


# How a backend builds an SDK client: service, region, credentials (None: unsigned STS).
ClientFactory = Callable[[str, str, Credentials | None], AwsClient]


class Logins:
    """The credentials a mount reads with, cached per identity (bounded; see identity_cache).

    The pod's own first (IRSA or Pod Identity), then, with ``assumeRoleArn``,
    the role chained after them. Each is loaded once per identity through
    ``ctx.shared`` (single flight) until shortly before it expires.
    """

    def __init__(
        self, settings: AwsSettings, services: BackendServices, new_client: ClientFactory
    ) -> None:
        self._settings = settings
        self._kube: KubeClient | None = services.kube
        self._new_client = new_client
        # A class names any region: STS clients are kept for a bounded few,
        # and evicting one closes its connections.
        self.sts_clients: Cache[str, AwsClient] = Cache(
            "aws.sts", max_entries=MAX_STS_CLIENTS, on_evict=close_client
        )
        self.identities = identity_cache()
        if services.caches is not None:
            services.caches.add(self.identities)
            services.caches.add(self.sts_clients)

    async def identity(
        self, plan: AwsPlan, ctx: FetchContext, region: str
    ) -> tuple[tuple[str, ...], AwsIdentity]:
        """The key and credentials a mount reads with: the pod's, or the role chained after."""
        key, entry = await self._pod(plan, ctx, region)
        if plan.chained is not None:
            key, entry = await self._chain(plan.chained, key, entry, ctx, region)
        return key, entry

    async def _pod(
        self, plan: AwsPlan, ctx: FetchContext, region: str
    ) -> tuple[tuple[str, ...], AwsIdentity]:
        pod = ctx.request.pod
        if plan.use_pod_identity:
            token = verified_token(ctx.request, POD_IDENTITY_AUDIENCE, parameter="usePodIdentity")
            endpoints = self.pod_identity_endpoints(plan.address_type)
            key = (pod.namespace, pod.service_account, "pod-identity", *endpoints)
            load = functools.partial(_login_pod_identity, endpoints, token)
            return key, await ctx.shared(
                self.identities, key, load, operation=errors.AGENT_OPERATION
            )
        token = verified_token(ctx.request, STS_AUDIENCE, parameter="IRSA (usePodIdentity false)")
        role = await self._role_arn(plan, ctx)
        key = (pod.namespace, pod.service_account, "irsa", role)
        load = functools.partial(
            self._login_irsa, region, role, session_name(pod.namespace, pod.service_account), token
        )
        return key, await ctx.shared(
            self.identities, key, load, operation="AssumeRoleWithWebIdentity"
        )

    def _login_irsa(self, region: str, role: str, session: str, token: str) -> AwsIdentity:
        # ctx.shared names only the operation: the role is the subject users need.
        with translating(
            errors.translate, subject=f"role {role!r}", operation="AssumeRoleWithWebIdentity"
        ):
            answer = self._sts_client(region).assume_role_with_web_identity(
                RoleArn=role, RoleSessionName=session, WebIdentityToken=token
            )
        return AwsIdentity(sts_credentials(answer, role, "AssumeRoleWithWebIdentity"))

    async def _chain(
        self,
        chained: ChainedRole,
        key: tuple[str, ...],
        pod: AwsIdentity,
        ctx: FetchContext,
        region: str,
    ) -> tuple[tuple[str, ...], AwsIdentity]:
        """The chained role's credentials, assumed with the pod's; cached per identity like them."""
        chained_key = (*key, "assume-role", chained.arn, chained.external_id, str(chained.duration))
        session = session_name(ctx.request.pod.namespace, ctx.request.pod.service_account)
        load = functools.partial(self._login_chained, pod, region, chained, session)
        return chained_key, await ctx.shared(
            self.identities, chained_key, load, operation="AssumeRole"
        )

    def _login_chained(
        self, pod: AwsIdentity, region: str, chained: ChainedRole, session: str
    ) -> AwsIdentity:
        # The pod's STS client, signed with its credentials, kept with them.
        sts = pod.client("sts", region, functools.partial(self._new_client, "sts", region))
        kwargs: dict[str, object] = {
            "RoleArn": chained.arn,
            "RoleSessionName": session,
            "DurationSeconds": chained.duration,
        }
        if chained.external_id:
            kwargs["ExternalId"] = chained.external_id
        with translating(
            errors.translate, subject=f"chained role {chained.arn!r}", operation="AssumeRole"
        ):
            answer = sts.assume_role(**kwargs)
        return AwsIdentity(sts_credentials(answer, chained.arn, "AssumeRole"))

    def pod_identity_endpoints(self, address_type: str) -> tuple[str, ...]:
        if self._settings.pod_identity_endpoint:
            return (self._settings.pod_identity_endpoint,)
        if address_type == "ipv4":
            return (POD_IDENTITY_IPV4,)
        if address_type == "ipv6":
            return (POD_IDENTITY_IPV6,)
        return (POD_IDENTITY_IPV4, POD_IDENTITY_IPV6)

    async def _role_arn(self, plan: AwsPlan, ctx: FetchContext) -> str:
        if plan.role_arn:
            return plan.role_arn
        pod = ctx.request.pod
        kube = self._kube
        if kube is None:
            raise InvalidParameters(
                [
                    "parameter 'roleArn' is required when the provider cannot read the "
                    f"ServiceAccount annotation {ROLE_ANNOTATION!r} (no Kubernetes API access)"
                ]
            )
        try:
            annotations = await kube.service_account_annotations(
                ctx, pod.namespace, pod.service_account
            )
        except NotFound:
            annotations = {}
        role = str(annotations.get(ROLE_ANNOTATION, ""))
        if not role:
            raise PermissionDenied(
                f"ServiceAccount {pod.namespace}/{pod.service_account} has no "
                f"{ROLE_ANNOTATION!r} annotation (IRSA); annotate it, set parameter "
                "'roleArn', or set usePodIdentity: \"true\"",
                code=ErrorCode.AuthFailed,
            )
        return role

    def _sts_client(self, region: str) -> AwsClient:
        client = self.sts_clients.peek(region)
        if client is None:
            client = self.sts_clients.put(region, self._new_client("sts", region, None))
        return client

    def close(self) -> None:
        self.identities.clear()  # closes each identity's clients
        self.sts_clients.clear()


def _login_pod_identity(endpoints: tuple[str, ...], token: str) -> AwsIdentity:
    where = " or ".join(endpoints)
    with translating(
        errors.translate,
        subject=f"the EKS Pod Identity agent at {where}",
        operation=errors.AGENT_OPERATION,
    ):
        return AwsIdentity(pod_identity_credentials(endpoints, token))
