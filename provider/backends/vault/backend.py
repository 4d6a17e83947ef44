"""HashiCorp Vault and OpenBao, read as the pod.

One mount: log in as the pod (``auth/<mount>/login`` with the pod's token for
the SecretProviderClass audience; kubernetes and jwt auth take the same
request), or reuse the Vault token cached for that identity; then make each
distinct request once (path + query + method + args), all in parallel; then
render one file per object. A ``select`` first LISTs its path (level by level
when recursive, bounded before any value is read), then reads every match
like an object. A 403 makes us log in once more and retry that request: the
cached token may have been revoked. Every request goes through
``ctx.call_async`` (the transport is asyncio-native), whose translator is
``errors.translate``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import time
from collections.abc import Awaitable
from dataclasses import replace

from provider import listing
from provider.backends.base import Backend, BackendServices, FetchContext, FetchResult
from provider.backends.jsonanswer import UnusableAnswer
from provider.backends.vault import VaultSettings, errors
from provider.backends.vault.config import (
    ReadKey,
    Selection,
    VaultConnection,
    VaultObject,
    VaultPlan,
    parse_plan,
)
from provider.backends.vault.credentials import TokenKey, VaultToken, login, token_cache
from provider.backends.vault.render import Fetched, check, render
from provider.backends.vault.transport import Answer, VaultTransport, transport_cache
from provider.errors import NotFound, PermissionDenied
from provider.identity import verified_token
from provider.request import MountRequest


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
        self.hmac_key = services.hmac_key or os.urandom(32)
        self._max_objects = services.max_objects
        self.transports = transport_cache()
        self.tokens = token_cache()
        if services.caches is not None:
            services.caches.add(self.transports)
            services.caches.add(self.tokens)

    def plan(self, request: MountRequest) -> VaultPlan:
        return parse_plan(
            request.attributes, default_mode=request.default_mode, settings=self._settings,
            max_objects=self._max_objects,
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
        fetched = {name: one for part in parts for name, one in part.items()}
        return FetchResult.of(render(obj, fetched[obj.object_name]) for obj in plan.objects)

    async def _fetch_in(
        self,
        plan: VaultPlan,
        connection: VaultConnection,
        objects: list[VaultObject],
        jwt: str,
        ctx: FetchContext,
    ) -> dict[str, Fetched]:
        """What ``objects`` read, by objectName, all in the namespace of ``connection``."""
        transport = await ctx.shared(
            self.transports, connection,
            functools.partial(VaultTransport, connection, self._settings),  # reads TLS files
            operation="vault.connect",
        )
        reader = _Reader(
            self, plan, connection=connection, transport=transport, jwt=jwt, ctx=ctx
        )
        await reader.log_in()
        plain = [o for o in objects if o.select is None]
        parts = await ctx.gather([
            reader.read_all(plain),
            *(reader.select(o) for o in objects if o.select is not None),
        ])
        return {name: one for part in parts for name, one in part.items()}

    def close(self) -> None:
        self.tokens.clear()
        self.transports.clear()  # closes every pool


class _Reader:
    """One namespace of one mount: its login, its reads and listings, through the caches."""

    def __init__(
        self,
        backend: VaultBackend,
        plan: VaultPlan,
        *,
        connection: VaultConnection,
        transport: VaultTransport,
        jwt: str,
        ctx: FetchContext,
    ) -> None:
        pod = ctx.request.pod
        self._backend = backend
        self._hmac_key = backend.hmac_key
        self._plan = plan
        self._transport = transport
        self._ctx = ctx
        self._key = TokenKey(
            pod_namespace=pod.namespace,
            service_account=pod.service_account,
            address=connection.address,
            vault_namespace=connection.namespace,
            auth_mount=plan.auth_mount,
            role=plan.role,
            audience=plan.audience,
            tls=connection.tls,
        )
        self._login = functools.partial(login, transport, plan.auth_mount, plan.role, jwt)
        self._login_subject = (
            f"login to auth/{plan.auth_mount} with role {plan.role!r} "
            f"as service account {pod.namespace}/{pod.service_account}"
        )
        self._token: VaultToken | None = None
        self._reads: dict[ReadKey, asyncio.Future[Answer | None]] = {}

    async def log_in(self) -> VaultToken:
        """The identity's Vault token: cached, or one login shared by every waiter."""
        self._token = await self._ctx.shared_async(
            self._backend.tokens, self._key, self._login,
            operation=errors.LOGIN, subject=self._login_subject,
        )
        return self._token

    async def _request(self, objects: list[VaultObject], read: ReadKey) -> Answer | None:
        """``read`` for ``objects``; a denial logs in once more and tries again."""
        token = self._token or await self.log_in()
        for attempt in (1, 2):
            try:
                return await self._ctx.call_async(
                    read_checked, self._transport, read, objects, token,
                    operation=f"vault.{read.method}", subject=_subject(objects, self._plan.role),
                )
            except PermissionDenied:
                if attempt == 2:
                    raise
                # The cached token may be revoked or its policies changed:
                # log in once more (one login for all reads that failed).
                self._backend.tokens.invalidate(self._key, token)
                token = await self.log_in()
        raise AssertionError("unreachable")

    def _cached(self, objects: list[VaultObject], read: ReadKey) -> Awaitable[Answer | None]:
        """``read``, once per mount however many objects and selections ask for it."""
        task = self._reads.get(read)
        if task is None:
            task = self._reads[read] = asyncio.ensure_future(self._load(objects, read))
        return task

    async def _load(self, objects: list[VaultObject], read: ReadKey) -> Answer | None:
        # A write (pki/issue, transit...) may make something new on every call:
        # never shared; kept per pod only when it comes with a lifetime.
        shareable = read.method in SHAREABLE_METHODS
        return await self._ctx.cached_object(
            self._key, read, lambda: self._request(objects, read),
            refresh=self._plan.refresh_interval if shareable else 0.0,
            size=answer_size, lifetime=lifetime,
        )

    async def read_all(self, objects: list[VaultObject]) -> dict[str, Fetched]:
        """Each distinct request of ``objects`` once, in parallel."""
        groups: dict[ReadKey, list[VaultObject]] = {}
        for obj in objects:
            groups.setdefault(obj.read, []).append(obj)
        answers = await self._ctx.gather(self._cached(g, r) for r, g in groups.items())
        by_read = dict(zip(groups, answers, strict=True))
        return {o.object_name: Fetched(by_read[o.read], self._hmac_key) for o in objects}

    async def select(self, obj: VaultObject) -> dict[str, Fetched]:
        """Every secret under the object's ``select`` path: listed, bounded, then read."""
        selection = obj.select
        assert selection is not None
        subject = f"object {obj.object_name!r}"
        keys = await self._list(obj, selection, subject)
        listing.check_bound(selection.spec, len(keys), subject)  # before any value is read
        base = selection.spec.path.rstrip("/") + "/"
        names = [listing.relative_name(selection.spec, base + k, subject) for k in keys]
        answers = await self._ctx.gather(
            self._cached([obj], selection.read_of(k)) for k in keys
        )
        matches = tuple(zip(names, answers, strict=True))
        return {obj.object_name: Fetched(None, self._hmac_key, matches)}

    async def _list(self, obj: VaultObject, selection: Selection, subject: str) -> list[str]:
        """The keys under the selection's path (``a``, ``sub/b`` when recursive), sorted.

        Each level is listed in parallel; a tree with more entries or folders
        than the bound fails as soon as that is known, before any value is read.
        """
        found: list[str] = []
        folders = [""]
        listed = 0
        while folders:
            listed += len(folders)
            listing.check_bound(selection.spec, max(len(found), listed, 1), subject)
            batch, folders = folders, []
            answers = await self._ctx.gather(self._list_one(obj, selection, f) for f in batch)
            for folder, keys in zip(batch, answers, strict=True):
                for key in keys:
                    if not key.endswith("/"):
                        found.append(folder + key)
                    elif selection.spec.recursive:
                        folders.append(folder + key)
        return sorted(found)

    async def _list_one(self, obj: VaultObject, selection: Selection, folder: str) -> list[str]:
        read = ReadKey(selection.list_path + folder, (), "LIST", "")
        try:
            answer = await self._cached([obj], read)
        except NotFound:
            return []  # Vault answers 404 for a path with nothing under it
        return list_keys(answer)


def list_keys(answer: Answer | None) -> list[str]:
    """The keys of a LIST answer (``data.keys``); UnusableAnswer if it has none."""
    data = answer.get("data") if answer else None
    keys = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise UnusableAnswer("to the LIST has no 'data.keys' list of names")
    return keys


async def read_checked(
    transport: VaultTransport, read: ReadKey, objects: list[VaultObject], token: VaultToken
) -> Answer | None:
    """One request, its answer checked here so that an unusable one is retried."""
    answer = await transport.request(
        read.method, read.path, token=token.token, query=read.query, body=objects[0].args
    )
    if read.method == "LIST" and objects[0].select is not None:
        list_keys(answer)
        return answer
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
