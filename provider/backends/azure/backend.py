"""Azure Key Vault secrets, keys and certificates, fetched as the pod.

Objects are read in parallel, one GET each (``objectVersionHistory`` adds one
list call and one GET per version). Clients and credentials are reused per
identity and vault (see ``credentials``); all of them share one HTTP transport,
so a vault's TLS connections are reused across identities (the bearer token
travels per request, never with the connection). The SDK's own retries are off:
``FetchContext.call`` retries transient faults inside the mount deadline and
honours Key Vault's Retry-After; it also translates the SDK's exceptions once
(``errors.translate``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar, cast

import requests.adapters
from azure.core.pipeline.transport import RequestsTransport

from provider import listing
from provider.backends.azure import AzureSettings, errors
from provider.backends.azure.clients import make_client, quiet_tracing
from provider.backends.azure.config import AzurePlan, parse_plan
from provider.backends.azure.credentials import (
    MAX_IDENTITIES,
    IdentityCache,
    IdentityEntry,
    IdentityKey,
    SignIn,
    describe,
)
from provider.backends.azure.objects import AzureObject, ObjectType
from provider.backends.azure.render import (
    Fetched,
    Rendered,
    SecretValue,
    metadata,
    render,
    render_cert,
    render_key,
    render_secret,
)
from provider.backends.base import (
    Backend,
    BackendServices,
    FetchContext,
    FetchResult,
)
from provider.backends.httpsession import LeanSession
from provider.cache import Cache
from provider.errors import DeadlineExceeded, InvalidParameters, NotFound, Translator, Unavailable
from provider.listing import Select
from provider.request import MountRequest

if TYPE_CHECKING:
    from azure.keyvault.certificates import (
        CertificateClient,
        CertificateProperties,
        KeyVaultCertificate,
    )
    from azure.keyvault.keys import KeyClient, KeyProperties
    from azure.keyvault.secrets import SecretClient, SecretProperties

    from provider.backends.azure.clients import KvClient
    Properties = SecretProperties | KeyProperties | CertificateProperties

_OPERATIONS = {
    ObjectType.SECRET: ("GetSecret", "ListSecretVersions"),
    ObjectType.KEY: ("GetKey", "ListKeyVersions"),
    ObjectType.CERT: ("GetCertificate", "ListCertificateVersions"),
}
_EPOCH = datetime.min.replace(tzinfo=UTC)

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
        self._settings = replace(settings, max_objects=services.max_objects)
        self._services = services
        # Proxies and ~/.netrc read once per host, no cookie jar (see httpsession).
        self._session = LeanSession()
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=8, pool_maxsize=settings.max_connections
        )
        self._session.mount("https://", adapter)
        # session_owner=False: no client or credential may close the shared session.
        self._transport = RequestsTransport(
            session=self._session,
            session_owner=False,
            connection_verify=settings.ca_file or True,
            connection_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
        )
        quiet_tracing()
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
            secrets=request.secrets,
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
        return SignIn(authority, self._transport, self._services.hmac_key)

    def _client(self, entry: IdentityEntry, kind: ObjectType, vault_url: str) -> KvClient:
        return entry.client(
            kind.value, vault_url,
            lambda cred: make_client(
                kind, vault_url, cred, transport=self._transport,
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
        # Read in parallel, rendered once all are in: a PFX's password is another object's.
        values = {obj.file_name: fetched for obj, fetched in reversed(read)}
        return FetchResult.of(
            render(obj, _with_password(obj, fetched, values)) for obj, fetched in read
        )

    def close(self) -> None:
        self.identities.clear()
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

    def _where(self, obj: AzureObject) -> tuple[KvClient, tuple[str, ...]]:
        """``obj``'s client and its rotation-cache identity."""
        # One Azure AD token serves every vault of the cloud; what a vault lets
        # this caller read is decided per vault, so the vault is in the identity.
        url = self._backend.vault_url(self._plan, obj.vault)
        return self._backend._client(self._entry, obj.type, url), (*self._key, url)

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
                lambda: ctx.call(_read, client, obj, version, operation=get_op, subject=subject),
                refresh=refresh, size=lambda r: len(r[0]), fresh=fresh,
            )

        if obj.history <= 1:
            return [(obj, Fetched((await get(obj.version),)))]
        chosen = await ctx.cached_object(
            identity, (obj, "versions"),
            lambda: ctx.call(_history, client, obj, operation=list_op, subject=subject),
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
            lambda: ctx.call(
                _list_secrets, client, select, operation="ListSecrets", subject=subject
            ),
            refresh=self._plan.refresh_interval, size=lambda ns: sum(len(n) for n in ns),
            fresh=fresh,
        )
        listing.check_bound(select, len(names), subject)
        matches = [obj.match(name) for name in names]
        parts = await ctx.gather(self.object(m, fresh=fresh) for m in matches)
        return [pair for part in parts for pair in part]


def _with_password(obj: AzureObject, fetched: Fetched, values: dict[str, Fetched]) -> Fetched:
    """``fetched`` with its pfxPasswordFrom object's value (checked to exist at plan time)."""
    if not obj.password_from:
        return fetched
    return replace(fetched, password=values[obj.password_from].versions[0].data)


def _read(client: KvClient, obj: AzureObject, version: str) -> Rendered:
    """One blocking GET and its rendering (runs on the pool, through ``ctx.call``).

    The answer is checked and rendered here, inside the call, so that an
    answer without what the API promises is retried like any transient fault.
    """
    if obj.type is ObjectType.SECRET:
        return _read_secret(cast("SecretClient", client), obj, version)
    if obj.type is ObjectType.KEY:
        return _read_key(cast("KeyClient", client), obj, version)
    return _read_cert(cast("CertificateClient", client), obj, version)


def _read_secret(client: SecretClient, obj: AzureObject, version: str) -> Rendered:
    secret = client.get_secret(obj.name, version or None)
    props = secret.properties
    if not isinstance(secret.value, str):
        raise _unusable(obj, "no value")
    value = SecretValue(
        value=secret.value,
        content_type=props.content_type or "",
        cert_backed=bool(props.key_id),
        version=_version(obj, props),
    )
    return Rendered(
        render_secret(obj, value), value.version, _metadata(obj, props, props.content_type)
    )


def _read_key(client: KeyClient, obj: AzureObject, version: str) -> Rendered:
    key = client.get_key(obj.name, version or None)
    jwk = key.key
    if jwk is None:
        raise _unusable(obj, "no key")
    fields = {
        name: _plain(getattr(jwk, name, None)) for name in ("kty", "n", "e", "crv", "x", "y")
    }
    if not fields["kty"]:
        raise _unusable(obj, "a key without a type (kty)")
    return Rendered(
        render_key(obj, fields), _version(obj, key.properties), _metadata(obj, key.properties)
    )


def _read_cert(client: CertificateClient, obj: AzureObject, version: str) -> Rendered:
    cert: KeyVaultCertificate
    if version:
        cert = client.get_certificate_version(obj.name, version)
    else:
        cert = client.get_certificate(obj.name)
    props = cert.properties
    return Rendered(render_cert(obj, cert.cer), _version(obj, props), _metadata(obj, props))


def _metadata(obj: AzureObject, props: Properties | None, content_type: str | None = None) -> bytes:
    """The metadataFile's JSON of ``props`` (only built when the object has one)."""
    if not obj.metadata_file or props is None:
        return b""
    return metadata({
        "tags": dict(props.tags or {}),
        "enabled": props.enabled,
        "created": props.created_on,
        "updated": props.updated_on,
        "expires": props.expires_on,
        "notBefore": props.not_before,
        "contentType": content_type,
        "version": props.version,
    })


def _list_secrets(client: KvClient, select: Select) -> tuple[str, ...]:
    """Names of the enabled secrets ``select`` matches (GET {vault}/secrets, every page).

    Key Vault filters nothing server-side: prefix and tags are matched here,
    from the list answer (no value is read). Listing stops one past the bound:
    that many already fail the mount, so the rest need not be paged through.
    """
    found: list[str] = []
    for props in cast("SecretClient", client).list_properties_of_secrets():
        name = props.name
        if props.enabled is None or not name:
            raise Unavailable(
                f"select {select.path!r}: Key Vault's list answer has an item without a name or "
                "attributes; not a usable answer"
            )
        tags = props.tags or {}
        if not (props.enabled and name.startswith(select.path)) or any(
            tags.get(key) != value for key, value in select.tags
        ):
            continue
        found.append(name)
        if len(found) > select.max:
            break
    return tuple(sorted(found))


def _unusable(obj: AzureObject, what: str) -> Unavailable:
    # Key Vault always sends these: a proxy or a fault answered. Retried; never
    # an empty file or an empty version.
    return Unavailable(f"{obj.describe}: Key Vault's answer has {what}; not a usable answer")


def _version(obj: AzureObject, props: Properties | None) -> str:
    """The object's version id from its Key Vault id; every real answer carries one."""
    version = getattr(props, "version", None)
    if not isinstance(version, str) or not version:
        raise _unusable(obj, "no id (no version)")
    return version


def _history(client: KvClient, obj: AzureObject) -> list[str]:
    """Versions to mount, newest first: enabled only, by creation time, up to N.

    With objectVersion, the history starts at that version (it and older ones).
    """
    listed: Iterable[Properties]
    if obj.type is ObjectType.SECRET:
        listed = cast("SecretClient", client).list_properties_of_secret_versions(obj.name)
    elif obj.type is ObjectType.KEY:
        listed = cast("KeyClient", client).list_properties_of_key_versions(obj.name)
    else:
        listed = cast("CertificateClient", client).list_properties_of_certificate_versions(
            obj.name
        )
    enabled = [p for p in listed if p.enabled and p.version]
    enabled.sort(key=lambda p: p.created_on or _EPOCH, reverse=True)
    ids = [str(p.version) for p in enabled]
    if obj.version:
        if obj.version not in ids:
            return []
        ids = ids[ids.index(obj.version):]
    return ids[: obj.history]


def _plain(value: object) -> object:
    """An SDK enum as its wire string (str() of a str-Enum is 'KeyType.RSA')."""
    return getattr(value, "value", value)
