"""HashiCorp Vault and OpenBao, read as the pod.

One mount: log in as the pod (``auth/<mount>/login`` with the pod's token for
the SecretProviderClass audience; kubernetes and jwt auth take the same
request), or reuse the Vault token cached for that identity; then make each
distinct request once (path + query + method + args), all in parallel; then
render one file per object. A 403 on a read makes us log in once more and
retry that read: the cached token may have been revoked.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from provider.backends.base import (
    Backend,
    BackendServices,
    FetchContext,
    FetchResult,
    ObjectVersion,
    OutputFile,
)
from provider.backends.vault import VaultSettings
from provider.backends.vault.auth import TokenKey, VaultToken, token_cache, token_from_login
from provider.backends.vault.config import (
    ReadKey,
    VaultConnection,
    VaultObject,
    VaultPlan,
    parse_plan,
)
from provider.backends.vault.errors import translate
from provider.backends.vault.render import check, render
from provider.backends.vault.transport import VaultTransport, transport_cache
from provider.codes import ErrorCode
from provider.errors import PermissionDenied, Unavailable
from provider.identity import verified_token
from provider.request import MountRequest

log = logging.getLogger(__name__)


class VaultBackend(Backend[VaultPlan]):
    name = "vault"
    cache_plans = True  # the plan reads only the class parameters and settings

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

    # -- plan ---------------------------------------------------------------

    def plan(self, request: MountRequest) -> VaultPlan:
        return parse_plan(request.attributes, request.default_mode, self._settings)

    def object_count(self, plan: VaultPlan) -> int:
        return len(plan.objects)

    # -- fetch --------------------------------------------------------------

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
        answers = {
            (ns, read): answer
            for ns, part in zip(by_namespace, parts, strict=True)
            for read, answer in part.items()
        }
        files: list[OutputFile] = []
        versions: list[ObjectVersion] = []
        for obj in plan.objects:
            f, v = render(obj, answers[(namespace_of(obj), obj.read)], self._hmac_key)
            files.append(f)
            versions.append(v)
        return FetchResult(tuple(files), tuple(versions))

    async def _fetch_in(
        self,
        plan: VaultPlan,
        connection: VaultConnection,
        objects: list[VaultObject],
        jwt: str,
        ctx: FetchContext,
    ) -> dict[ReadKey, Any]:
        """The answers for ``objects``, all in the namespace of ``connection``."""
        pod = ctx.request.pod
        transport = await ctx.shared(
            self.transports,
            connection,
            lambda: VaultTransport(connection, self._settings),  # reads the TLS files
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
        login = self._login_fn(plan, transport, jwt, f"{pod.namespace}/{pod.service_account}")

        async def token() -> VaultToken:
            return await ctx.shared(self.tokens, key, login, operation="vault.login")

        first = await token()
        groups: dict[ReadKey, list[VaultObject]] = {}
        for obj in objects:
            groups.setdefault(obj.read, []).append(obj)

        async def fresh_read(group: list[VaultObject]) -> Any:
            current = first
            for attempt in (1, 2):
                call = _read_fn(transport, group, plan.role, current)
                try:
                    return await ctx.call(call, operation=f"vault.{group[0].read.method}")
                except PermissionDenied:
                    if attempt == 2:
                        raise
                    # The cached token may be revoked or its policies changed:
                    # log in once more (one login for all reads that failed).
                    self.tokens.invalidate(key, current)
                    current = await token()
            raise AssertionError("unreachable")

        async def read(group: list[VaultObject]) -> tuple[ReadKey, Any]:
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

        return dict(await ctx.gather(read(group) for group in groups.values()))

    def _login_fn(
        self, plan: VaultPlan, transport: VaultTransport, jwt: str, who: str
    ) -> Callable[[], VaultToken]:
        subject = (
            f"login to auth/{plan.auth_mount} with role {plan.role!r} as service account {who}"
        )

        def login() -> VaultToken:
            try:
                answer = transport.adapter(None).post(
                    f"/v1/auth/{plan.auth_mount}/login", json={"role": plan.role, "jwt": jwt}
                )
            except Exception as exc:
                raise translate(exc, subject=subject, operation="the login", login=True) from None
            if not isinstance(answer, dict) or not isinstance(answer.get("auth"), dict):
                # Every login answer has an auth object: this one is not usable.
                raise Unavailable(f"{subject}: Vault's login answer has no 'auth' object; "
                                  "not a usable answer")
            found = token_from_login(answer)
            if found is None:
                raise PermissionDenied(f"{subject}: Vault's answer holds no token",
                                       code=ErrorCode.AuthFailed)
            log.debug("vault login", extra={"role": plan.role, "service_account": who,
                                            "ttl": found.lease_seconds})
            return found

        return login

    def close(self) -> None:
        self.tokens.clear()
        self.transports.clear()  # closes every session


# Reads whose answers may be shared by the pods of one identity within the window.
SHAREABLE_METHODS = frozenset({"GET", "LIST"})


def answer_size(answer: Any) -> int:
    """Bytes an answer holds, for the cache's byte bound (answers are small JSON)."""
    return len(json.dumps(answer, default=str)) if answer is not None else 0


def lifetime(answer: Any) -> float | None:
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


def _read_fn(
    transport: VaultTransport, objects: list[VaultObject], role: str, token: VaultToken
) -> Callable[[], Any]:
    read = objects[0].read
    names = ", ".join(repr(o.object_name) for o in objects)
    label = "object" if len(objects) == 1 else "objects"
    subject = f"{label} {names} (secretPath {objects[0].secret_path!r}, role {role!r})"

    def call() -> Any:
        kwargs: dict[str, Any] = {}
        if read.query:
            kwargs["params"] = list(read.query)
        if objects[0].args is not None:
            kwargs["json"] = objects[0].args
        try:
            answer = transport.adapter(token.token).request(
                read.method, f"/v1/{read.path}", **kwargs
            )
        except Exception as exc:
            raise translate(exc, subject=subject, operation=f"{read.method} {read.path}") from None
        answer = answer if isinstance(answer, dict) else None
        for obj in objects:
            check(obj, answer)  # here, so that an unusable answer is retried
        return answer

    return call
