"""Azure Key Vault secrets, keys and certificates, fetched as the pod.

Objects are read in parallel, one GET each (``objectVersionHistory`` adds one
list call and one GET per version, ``select`` one listing and one GET per
match), on the event loop (``clients``, ``transport``: no thread per read)
with JSON answers read and checked in ``answers``. Clients and credentials are
reused per identity and vault (see ``credentials``); all of them share one
pool per host, so a vault's TLS connections are reused across identities (the
bearer token travels per request, never with the connection).
``FetchContext.call_async`` bounds a mount's parallel reads, cancels a read
still running at the mount deadline (its connection is closed), retries
transient faults inside the deadline, honours Key Vault's Retry-After, and
translates failures once (``errors.translate``). Only a VM managed identity's
token requests (azure-identity, blocking) run on threads (``_blocking``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from provider import calltime, listing
from provider.backends.azure import AzureSettings, answers, errors
from provider.backends.azure.challenge import Challenges
from provider.backends.azure.clients import VaultClient
from provider.backends.azure.config import AzurePlan, parse_plan
from provider.backends.azure.credentials import (
    MAX_IDENTITIES,
    IdentityCache,
    IdentityEntry,
    IdentityKey,
    SignIn,
    describe,
    quiet_tracing,
)
from provider.backends.azure.objects import AzureObject, ObjectType
from provider.backends.azure.render import Fetched, Rendered, render
from provider.backends.azure.tokens import Held
from provider.backends.azure.transport import Pools
from provider.backends.base import (
    Backend,
    BackendServices,
    FetchContext,
    FetchResult,
)
from provider.cache import Cache
from provider.errors import DeadlineExceeded, InvalidParameters, NotFound, Translator
from provider.listing import Select
from provider.request import MountRequest

if TYPE_CHECKING:
    from azure.core.pipeline.transport import RequestsTransport

_OPERATIONS = {
    ObjectType.SECRET: ("GetSecret", "ListSecretVersions"),
    ObjectType.KEY: ("GetKey", "ListKeyVersions"),
    ObjectType.CERT: ("GetCertificate", "ListCertificateVersions"),
}

# Threads for a VM managed identity's token requests (one at a time per identity).
MAX_TOKEN_THREADS = 4
# What one object of the class was read as: itself, or each secret its selection matched.
Parts = list[tuple[AzureObject, Fetched]]


class AzureBackend(Backend[AzurePlan]):
    name = "azure"
    # Plans hold no pod-specific data: a service principal's secret is read from
    # each mount's request, never kept in the plan (config.Auth).
    cache_plans = True
    translate: ClassVar[Translator | None] = staticmethod(errors.translate)

    def __init__(self, settings: AzureSettings, services: BackendServices) -> None:
        # A selection may match at most the provider's --max-objects.
        self._settings = settings
        self._max_objects = services.max_objects
        self._services = services
        # Key Vault reads and Azure AD's token requests: one pool per host (on
        # the event loop), and each vault's challenge (scope and tenant), shared by every identity.
        self._pools = Pools(
            ca_file=settings.ca_file, connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout, max_connections=settings.max_connections,
        )
        self._challenges = Challenges()
        # azure-core's transport, for the VM managed identity only (made on first use).
        self._transport: RequestsTransport | None = None
        self._session: Any = None
        self._transport_lock = threading.Lock()
        self._token_threads: ThreadPoolExecutor | None = None  # made on first use
        self.identities = IdentityCache()
        # Single flight of a new credential's first read per identity (nothing is
        # kept here: the credential keeps its token).
        self.sign_ins: Cache[IdentityKey, bool] = Cache(
            "azure.sign_ins", max_entries=MAX_IDENTITIES
        )
        if services.caches is not None:
            services.caches.add(self.identities.entries)

    # -- plan ---------------------------------------------------------------

    def plan(self, request: MountRequest) -> AzurePlan:
        return parse_plan(
            request.attributes, default_mode=request.default_mode, settings=self._settings,
            secrets=request.secrets, max_objects=self._max_objects,
        )

    # -- identity and clients -------------------------------------------------

    def vault_url(self, plan: AzurePlan, vault: str = "") -> str:
        """The URL of ``vault`` (default: the class's ``keyvaultName``) in the class's cloud."""
        suffix = self._settings.keyvault_dns_suffix or plan.cloud.keyvault_dns_suffix
        try:
            return self._settings.keyvault_endpoint.format(
                vault=vault or plan.vault_name, suffix=suffix
            )
        except (KeyError, IndexError, ValueError):
            raise InvalidParameters(
                ["provider flag --azure-keyvault-endpoint must use only {vault} and {suffix}"]
            ) from None

    def _sign_in(self, plan: AzurePlan) -> SignIn:
        authority = (self._settings.authority_host or plan.cloud.authority_host).rstrip("/")
        return SignIn(authority, self._pools, self._services.hmac_key, self._sdk_transport,
                      self._blocking)

    async def _blocking(self, fn: Callable[[], Held]) -> Held:
        """``fn()`` (a VM managed identity's token request) on a thread, off the event loop.

        Its sockets are shut after the connect and read timeouts
        (``provider.calltime``): a stalled IMDS never keeps a thread, even when
        the mount that asked has given up at its deadline.
        """
        if self._token_threads is None:
            self._token_threads = ThreadPoolExecutor(
                MAX_TOKEN_THREADS, thread_name_prefix="azure-token"
            )
        bound = time.monotonic() + self._settings.connect_timeout + self._settings.read_timeout
        return await asyncio.get_running_loop().run_in_executor(
            self._token_threads, calltime.run_until, bound, fn
        )

    def _sdk_transport(self) -> RequestsTransport:
        """azure-core's transport for azure-identity (the VM managed identity), made once.

        Its requests session reads proxies and ~/.netrc once per host and keeps
        no cookie jar (``httpsession``).
        """
        with self._transport_lock:
            if self._transport is None:
                import requests.adapters
                from azure.core.pipeline.transport import RequestsTransport

                from provider.backends.httpsession import LeanSession

                quiet_tracing()
                session = LeanSession()
                session.mount("https://", requests.adapters.HTTPAdapter(
                    pool_connections=8, pool_maxsize=self._settings.max_connections
                ))
                self._session = session
                # session_owner=False: no credential may close the shared session.
                self._transport = RequestsTransport(
                    session=session,
                    session_owner=False,
                    connection_verify=self._settings.ca_file or True,
                    connection_timeout=self._settings.connect_timeout,
                    read_timeout=self._settings.read_timeout,
                )
            return self._transport

    def client(self, entry: IdentityEntry, kind: ObjectType, vault_url: str) -> VaultClient:
        """``entry``'s client of ``kind`` for ``vault_url`` (made once, kept with the identity)."""
        return entry.client(
            kind.value, vault_url,
            lambda tokens: VaultClient(
                kind, vault_url, tokens, pools=self._pools, challenges=self._challenges,
                verify_challenge_resource=self._settings.verify_challenge_resource,
                api_version=self._settings.api_version,
            ),
        )

    # -- fetch --------------------------------------------------------------

    async def fetch(self, plan: AzurePlan, ctx: FetchContext) -> FetchResult:
        # Builds objects only, no network.
        key, entry = self._sign_in(plan).identity(plan, ctx.request, self.identities)
        reader = _Reader(self, plan, ctx, key, entry)
        todo = list(plan.objects)
        results: list[Parts] = []
        if not entry.warm and todo:
            # A fresh credential has no token: N parallel reads (of this mount, or of
            # pods starting together) would make N token requests, which Azure AD
            # throttles. One read goes first, once per identity, and its success is
            # the proof that Azure AD accepts the credential: only then may a cached
            # object be served on its behalf.
            first = todo.pop(0)
            mine: Parts | None = None

            async def sign_in() -> bool:
                nonlocal mine
                mine = await reader.object(first, fresh=True)
                entry.warm = True  # before the flight ends: no mount starts another
                return True

            try:
                await self.sign_ins.get(key, sign_in, timeout=ctx.deadline.remaining(), ttl=0)
            except TimeoutError:
                raise DeadlineExceeded(
                    "Azure AD did not give a token before the mount deadline"
                ) from None
            if mine is not None:
                results.append(mine)
            else:
                todo.insert(0, first)  # another mount signed in: read it like the rest
        results += await ctx.gather(reader.object(obj) for obj in todo)
        read = [pair for part in results for pair in part]
        if any(obj.password_from for obj in plan.objects):
            # Encrypting a PFX is CPU work (PBKDF2): off the event loop.
            return await asyncio.to_thread(_render_all, read)
        return _render_all(read)

    def close(self) -> None:
        self.identities.clear()
        self._pools.close()
        if self._token_threads is not None:
            self._token_threads.shutdown(wait=False, cancel_futures=True)
        if self._session is not None:
            self._session.close()


class _Reader:
    """One mount's reads: each object through the rotation cache, as the pod."""

    def __init__(
        self, backend: AzureBackend, plan: AzurePlan, ctx: FetchContext,
        key: IdentityKey, entry: IdentityEntry,
    ) -> None:
        self._backend = backend
        self._plan = plan
        self._ctx = ctx
        self._key = key
        self._entry = entry
        self._who = describe(plan, ctx.request)

    def _subject(self, obj: AzureObject) -> str:
        vault = obj.vault or self._plan.vault_name
        what = f"select {obj.select.path!r}" if obj.select is not None else repr(obj.name)
        return f"object {what} (objectType {obj.type.value}) in vault {vault!r} as {self._who}"

    def _where(self, obj: AzureObject) -> tuple[VaultClient, tuple[str, ...]]:
        """``obj``'s client and its rotation-cache identity."""
        # One Azure AD token serves every vault of the cloud; what a vault lets
        # this caller read is decided per vault, so the vault is in the identity.
        url = self._backend.vault_url(self._plan, obj.vault)
        return self._backend.client(self._entry, obj.type, url), (*self._key, url)

    async def object(self, obj: AzureObject, *, fresh: bool = False) -> Parts:
        """``obj`` read: its current (or chosen) version, or its history, or its matches."""
        if obj.select is not None:
            return await self._selection(obj, obj.select, fresh=fresh)
        client, identity = self._where(obj)
        subject = self._subject(obj)
        get_op, list_op = _OPERATIONS[obj.type]
        ctx, refresh = self._ctx, self._plan.refresh_interval

        async def get(version: str) -> Rendered:
            return await ctx.cached_object(
                identity, (obj, version),
                lambda: ctx.call_async(
                    answers.read, client, obj, version, operation=get_op, subject=subject
                ),
                refresh=refresh, size=lambda r: len(r[0]), fresh=fresh,
            )

        if obj.history <= 1:
            return [(obj, Fetched((await get(obj.version),)))]
        chosen = await ctx.cached_object(
            identity, (obj, "versions"),
            lambda: ctx.call_async(
                answers.history, client, obj, operation=list_op, subject=subject
            ),
            refresh=refresh, size=lambda vs: sum(len(v) for v in vs), fresh=fresh,
        )
        if not chosen:
            since = f" at or before objectVersion {obj.version!r}" if obj.version else ""
            raise NotFound(f"{subject}: no enabled version found{since}")
        return [(obj, Fetched(tuple(await ctx.gather(get(v) for v in chosen))))]

    async def _selection(self, obj: AzureObject, select: Select, *, fresh: bool) -> Parts:
        """Every enabled secret the selection matches, each read like a named secret.

        The listing (names only) goes through the rotation cache like a value;
        it is bounded before any value is read, so nothing partial is mounted.
        """
        client, identity = self._where(obj)
        subject = self._subject(obj)
        ctx = self._ctx
        names = await ctx.cached_object(
            identity, (obj, "list"),
            lambda: ctx.call_async(
                answers.list_secrets, client, obj, select, operation="ListSecrets",
                subject=subject,
            ),
            refresh=self._plan.refresh_interval, size=lambda ns: sum(len(n) for n in ns),
            fresh=fresh,
        )
        listing.check_bound(select, len(names), subject)
        matches = [obj.match(name) for name in names]
        parts = await ctx.gather(self.object(m, fresh=fresh) for m in matches)
        return [pair for part in parts for pair in part]


def _render_all(read: Parts) -> FetchResult:
    """Every object's files, in the class's order, rendered once all are read: a PFX's
    password is another object's value."""
    values = {obj.file_name: fetched for obj, fetched in reversed(read)}
    return FetchResult.of(
        render(obj, _with_password(obj, fetched, values)) for obj, fetched in read
    )


def _with_password(obj: AzureObject, fetched: Fetched, values: dict[str, Fetched]) -> Fetched:
    """``fetched`` with its pfxPasswordFrom object's value (checked to exist at plan time)."""
    if not obj.password_from:
        return fetched
    return replace(fetched, password=values[obj.password_from].versions[0].data)
