"""HashiCorp Vault and OpenBao, read as the pod.

One mount: log in as the pod (``auth/<mount>/login`` with the pod's token for
the SecretProviderClass audience; kubernetes and jwt auth take the same
request), or reuse the Vault token cached for that identity; then make each
distinct request once (path + query + method + args), all in parallel; then
render one file per object. A 403 on a read makes us log in once more and
retry that read: the cached token may have been revoked.
"""

from __future__ import annotations

import functools
import json
import os
import time
from dataclasses import replace

from provider.backends.base import Backend, BackendServices, FetchContext, FetchResult
from provider.backends.vault import VaultSettings, errors
from provider.backends.vault.config import (
    ReadKey,
    VaultConnection,
    VaultObject,
    VaultPlan,
    parse_plan,
)
from provider.backends.vault.credentials import TokenKey, VaultToken, login, token_cache
from provider.backends.vault.render import Fetched, check, render
from provider.backends.vault.transport import Answer, VaultTransport, transport_cache
from provider.errors import PermissionDenied
from provider.identity import verified_token
from provider.request import MountRequest

# What a mount read, per (namespace, request).
Answers = dict[ReadKey, Answer | None]


class VaultBackend(Backend[VaultPlan]):
    name = "vault"
    # The plan holds the class parameters and the provider's settings, never
    # the pod's identity or tokens: one parse serves every pod of a class.
    cache_plans = True
    translate = staticmethod(errors.translate)

    def __init__(self, settings: VaultSettings, services: BackendServices) -> None:
        self._settings = settings
        # The core always passes a key; a random one keeps versions unguessable
        # even if a caller does not (versions then change on restart).
        self._hmac_key = services.hmac_key or os.urandom(32)
        self.transports = transport_cache()
        self.tokens = token_cache()
        if services.caches is not None:
            services.caches.add(self.transports)
            services.caches.add(self.tokens)

    def plan(self, request: MountRequest) -> VaultPlan:
        return parse_plan(
            request.attributes, default_mode=request.default_mode, settings=self._settings
        )

    async def fetch(self, plan: VaultPlan, ctx: FetchContext) -> FetchResult:
        jwt = verified_token(ctx.request, plan.audience, parameter="audience")
        # Objects may name their own vaultNamespace: one connection and one
        # login per namespace (a token is only good in the namespace it came
        # from), all read in parallel, all or nothing.
        def namespace_of(obj: VaultObject) -> str:
            return plan.connection.namespace if obj.namespace is None else obj.namespace

        by_namespace: dict[str, list[VaultObject]] = {}
        for obj in plan.objects:
            by_namespace.setdefault(namespace_of(obj), []).append(obj)
        parts = await ctx.gather(
            self._fetch_in(plan, replace(plan.connection, namespace=ns), objs, jwt, ctx)
            for ns, objs in by_namespace.items()
        )
        answers = dict(zip(by_namespace, parts, strict=True))
        return FetchResult.of(
            render(obj, Fetched(answers[namespace_of(obj)][obj.read], self._hmac_key))
            for obj in plan.objects
        )

    async def _fetch_in(
        self,
        plan: VaultPlan,
        connection: VaultConnection,
        objects: list[VaultObject],
        jwt: str,
        ctx: FetchContext,
    ) -> Answers:
        """The answers for ``objects``, all in the namespace of ``connection``."""
        pod = ctx.request.pod
        transport = await ctx.shared(
            self.transports, connection,
            functools.partial(VaultTransport, connection, self._settings),  # reads TLS files
            operation="vault.connect",
        )
        key = TokenKey(
            pod_namespace=pod.namespace,
            service_account=pod.service_account,
            address=connection.address,
            vault_namespace=connection.namespace,
            auth_mount=plan.auth_mount,
            role=plan.role,
            audience=plan.audience,
            tls=connection.tls,
        )
        who = f"{pod.namespace}/{pod.service_account}"
        log_in = functools.partial(login, transport, plan.auth_mount, plan.role, jwt)

        async def token() -> VaultToken:
            return await ctx.shared(
                self.tokens, key, log_in, operation=errors.LOGIN,
                subject=f"login to auth/{plan.auth_mount} with role {plan.role!r} "
                f"as service account {who}",
            )

        first = await token()

        async def fresh_read(group: list[VaultObject]) -> Answer | None:
            current = first
            request = group[0].read
            for attempt in (1, 2):
                try:
                    return await ctx.call(
                        read_checked, transport, group, current,
                        operation=f"vault.{request.method}", subject=_subject(group, plan.role),
                    )
                except PermissionDenied:
                    if attempt == 2:
                        raise
                    # The cached token may be revoked or its policies changed:
                    # log in once more (one login for all reads that failed).
                    self.tokens.invalidate(key, current)
                    current = await token()
            raise AssertionError("unreachable")

        async def read(group: list[VaultObject]) -> tuple[ReadKey, Answer | None]:
            request = group[0].read
            # A write (pki/issue, transit...) may make something new on every call:
            # never shared; kept per pod only when it comes with a lifetime.
            shareable = request.method in SHAREABLE_METHODS
            answer = await ctx.cached_object(
                key, request, lambda: fresh_read(group),
                refresh=plan.refresh_interval if shareable else 0.0,
                size=answer_size, lifetime=lifetime,
            )
            return request, answer

        groups: dict[ReadKey, list[VaultObject]] = {}
        for obj in objects:
            groups.setdefault(obj.read, []).append(obj)
        return dict(await ctx.gather(read(group) for group in groups.values()))

    def close(self) -> None:
        self.tokens.clear()
        self.transports.clear()  # closes every pool


def read_checked(
    transport: VaultTransport, objects: list[VaultObject], token: VaultToken
) -> Answer | None:
    """The objects' one request, its answer checked here so that an unusable one is retried."""
    read = objects[0].read
    answer = transport.request(
        read.method, read.path, token=token.token, query=read.query, body=objects[0].args
    )
    for obj in objects:
        check(obj, answer)
    return answer


def _subject(objects: list[VaultObject], role: str) -> str:
    names = ", ".join(repr(o.object_name) for o in objects)
    label = "object" if len(objects) == 1 else "objects"
    return f"{label} {names} (secretPath {objects[0].secret_path!r}, role {role!r})"


# Reads whose answers may be shared by the pods of one identity within the window.
SHAREABLE_METHODS = frozenset({"GET", "LIST"})


def answer_size(answer: Answer | None) -> int:
    """Bytes an answer holds, for the cache's byte bound (answers are small JSON)."""
    return len(json.dumps(answer, default=str)) if answer is not None else 0


def lifetime(answer: Answer | None) -> float | None:
    """Seconds a dynamic answer lives, or None when it is a static value.

    Dynamic: a lease (``lease_id``, or a renewable ``lease_duration``; KV v1
    answers carry a non-renewable ``lease_duration`` that is only a TTL hint
    for a static value) or a PKI issue/sign answer (``data.expiration`` with
    a ``serial_number``).
    """
    if not isinstance(answer, dict):
        return None
    lease = answer.get("lease_duration")
    lease = lease if isinstance(lease, int) and not isinstance(lease, bool) else 0
    data = answer.get("data")
    if isinstance(data, dict) and "serial_number" in data:
        expiration = data.get("expiration")
        if isinstance(expiration, int | float) and not isinstance(expiration, bool):
            left = float(expiration) - time.time()
            return min(left, float(lease)) if lease > 0 else left
    if answer.get("lease_id") or (lease > 0 and answer.get("renewable") is True):
        return float(lease)
    return None
