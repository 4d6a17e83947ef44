"""Azure Key Vault secrets, keys and certificates, fetched as the pod.

Objects are read in parallel, one GET each (``objectVersionHistory`` adds one
list call and one GET per version). Clients and credentials are reused per
identity and vault (see ``credentials``); all of them share one HTTP transport,
so a vault's TLS connections are reused across identities (the bearer token
travels per request, never with the connection). The SDK's own retries are off:
``FetchContext.call`` retries transient faults inside the mount deadline and
honours Key Vault's Retry-After.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import requests.adapters
from azure.core.pipeline.transport import RequestsTransport
from azure.identity import (
    ClientAssertionCredential,
    ClientSecretCredential,
    ManagedIdentityCredential,
)

from provider.backends.azure import AzureSettings
from provider.backends.azure.config import (
    CLOUDS,
    SP_MISSING,
    WORKLOAD_IDENTITY_AUDIENCE,
    AuthMode,
    AzureObject,
    AzurePlan,
    ObjectType,
    parse_plan,
    service_principal,
)
from provider.backends.azure.credentials import (
    MAX_IDENTITIES,
    Assertion,
    IdentityCache,
    IdentityEntry,
)
from provider.backends.azure.errors import translate
from provider.backends.azure.render import (
    SecretValue,
    render_cert,
    render_key,
    render_secret,
    split_cert_and_key,
)
from provider.backends.base import (
    Backend,
    BackendServices,
    FetchContext,
    FetchResult,
    ObjectVersion,
    OutputFile,
)
from provider.backends.httpsession import LeanSession
from provider.cache import Cache
from provider.errors import DeadlineExceeded, InvalidParameters, NotFound, Unavailable
from provider.identity import verified_token
from provider.request import MountRequest

_KNOWN_AUTHORITIES = {c.authority_host.rstrip("/") for c in CLOUDS.values()}
_OPERATIONS = {
    ObjectType.SECRET: ("GetSecret", "ListSecretVersions"),
    ObjectType.KEY: ("GetKey", "ListKeyVersions"),
    ObjectType.CERT: ("GetCertificate", "ListCertificateVersions"),
}
_EPOCH = datetime.min.replace(tzinfo=UTC)

# One object version's rendered bytes and its Key Vault version id.
Rendered = tuple[bytes, str]
# One object's files and versions.
Parts = tuple[list[OutputFile], list[ObjectVersion]]


class AzureBackend(Backend[AzurePlan]):
    name = "azure"
    # Plans hold no pod-specific data (the SP secret is read per mount).
    cache_plans = True

    def __init__(self, settings: AzureSettings, services: BackendServices) -> None:
        self._settings = settings
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
        self.identities = IdentityCache()
        # Single flight of a new credential's first read per identity (nothing is
        # kept here: the credential keeps its token).
        self.sign_ins: Cache[tuple[str, ...], bool] = Cache(
            "azure.sign_ins", max_entries=MAX_IDENTITIES
        )
        if services.caches is not None:
            services.caches.add(self.identities.entries)

    # -- plan ---------------------------------------------------------------

    def plan(self, request: MountRequest) -> AzurePlan:
        return parse_plan(request.attributes, request.secrets, request.default_mode)

    def object_count(self, plan: AzurePlan) -> int:
        return len(plan.objects)

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

    def _authority(self, plan: AzurePlan) -> str:
        return (self._settings.authority_host or plan.cloud.authority_host).rstrip("/")

    def _sdk_kwargs(self) -> dict[str, Any]:
        # retry_total=0: our retry loop is the one that knows the mount deadline.
        return {"transport": self._transport, "retry_total": 0}

    def _identity(
        self, plan: AzurePlan, request: MountRequest
    ) -> tuple[tuple[str, ...], IdentityEntry]:
        auth = plan.auth
        pod = request.pod
        authority = self._authority(plan)
        kw = self._sdk_kwargs()
        if auth.mode is AuthMode.WORKLOAD_IDENTITY:
            token = verified_token(request, WORKLOAD_IDENTITY_AUDIENCE, parameter="clientID")
            key: tuple[str, ...] = (
                *pod.identity, "workload-identity", authority, auth.tenant_id, auth.client_id
            )

            def make_wi() -> IdentityEntry:
                assertion = Assertion()
                credential = ClientAssertionCredential(
                    auth.tenant_id, auth.client_id, assertion, authority=authority, **kw
                )
                return IdentityEntry(credential, assertion)

            entry = self.identities.get(key, make_wi)
            assert entry.assertion is not None
            entry.assertion.set(token)  # the newest token kubelet gave this identity
            return key, entry
        if auth.mode is AuthMode.SERVICE_PRINCIPAL:
            sp = service_principal(request.secrets)
            if sp is None:
                raise InvalidParameters([SP_MISSING])
            key = (
                *pod.identity, "service-principal", authority, auth.tenant_id, sp.client_id,
                sp.fingerprint(self._services.hmac_key),
            )

            def make_sp() -> IdentityEntry:
                assert sp is not None
                credential = ClientSecretCredential(
                    auth.tenant_id, sp.client_id, sp.secret, authority=authority,
                    # MSAL asks login.microsoftonline.com to validate unknown hosts;
                    # a sovereign or private authority is trusted by configuration.
                    disable_instance_discovery=authority not in _KNOWN_AUTHORITIES,
                    **kw,
                )
                return IdentityEntry(credential, None)

            return key, self.identities.get(key, make_sp)
        key = (*pod.identity, "vm-managed-identity", auth.client_id)

        def make_mi() -> IdentityEntry:
            credential = ManagedIdentityCredential(client_id=auth.client_id or None, **kw)
            return IdentityEntry(credential, None)

        return key, self.identities.get(key, make_mi)

    def _client(self, entry: IdentityEntry, kind: ObjectType, vault_url: str) -> Any:
        kw: dict[str, Any] = {
            **self._sdk_kwargs(),
            "verify_challenge_resource": self._settings.verify_challenge_resource,
        }
        if self._settings.api_version:
            kw["api_version"] = self._settings.api_version
        return entry.client(
            kind.value, vault_url, lambda cred: _client_class(kind)(vault_url, cred, **kw)
        )

    # -- fetch --------------------------------------------------------------

    async def fetch(self, plan: AzurePlan, ctx: FetchContext) -> FetchResult:
        key, entry = self._identity(plan, ctx.request)  # builds objects only, no network
        who = _describe_auth(plan, ctx.request)

        def read(obj: AzureObject, *, fresh: bool = False) -> Awaitable[Parts]:
            # One Azure AD token serves every vault of the cloud; what a vault lets
            # this caller read is decided per vault, so the vault is in the identity.
            url = self.vault_url(plan, obj.vault)
            return self._object(
                obj, plan=plan, entry=entry, vault_url=url, who=who, ctx=ctx,
                identity=(*key, url), fresh=fresh,
            )

        todo = list(plan.objects)
        results = []
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
                mine = await read(first, fresh=True)
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
        results += await ctx.gather(read(obj) for obj in todo)
        files: list[OutputFile] = []
        versions: list[ObjectVersion] = []
        for part_files, part_versions in results:
            files.extend(part_files)
            versions.extend(part_versions)
        return FetchResult(tuple(files), tuple(versions))

    async def _object(
        self, obj: AzureObject, *, plan: AzurePlan, entry: IdentityEntry, vault_url: str,
        who: str, ctx: FetchContext, identity: tuple[str, ...], fresh: bool = False,
    ) -> tuple[list[OutputFile], list[ObjectVersion]]:
        client = self._client(entry, obj.type, vault_url)
        vault = obj.vault or plan.vault_name
        subject = f"object {obj.name!r} (objectType {obj.type.value}) in vault {vault!r}"
        subject += f" as {who}"
        get_op, list_op = _OPERATIONS[obj.type]

        def get(version: str) -> Callable[[], Rendered]:
            def call() -> Rendered:
                try:
                    return _read(
                        client, obj, version, construct_chain=self._settings.construct_pem_chain
                    )
                except Exception as exc:
                    raise translate(exc, subject=subject, operation=get_op) from None

            return call

        def cached_get(version: str) -> Awaitable[Rendered]:
            return ctx.cached_object(
                identity, (obj, version),
                lambda: ctx.call(get(version), operation=get_op),
                refresh=plan.refresh_interval, size=lambda r: len(r[0]), fresh=fresh,
            )

        if obj.history <= 1:
            data, version = await cached_get(obj.version)
            files = [OutputFile(obj.file_name, obj.mode, data, obj.name)]
            if self._settings.separate_cert_and_key and obj.type is ObjectType.SECRET:
                # --write-cert-and-key-in-separate-files: <file>.crt and <file>.key
                # beside the bundle, as the Azure provider writes them.
                parts = None if obj.pfx else split_cert_and_key(data)
                if parts is not None:
                    files[:0] = [
                        OutputFile(obj.file_name + suffix, obj.mode, part, obj.name)
                        for suffix, part in zip((".crt", ".key"), parts, strict=True)
                    ]
            return files, [ObjectVersion(obj.version_id, version)]

        def versions() -> list[str]:
            try:
                return _history(client, obj)
            except Exception as exc:
                raise translate(exc, subject=subject, operation=list_op) from None

        chosen = await ctx.cached_object(
            identity, (obj, "versions"),
            lambda: ctx.call(versions, operation=list_op),
            refresh=plan.refresh_interval, size=lambda vs: sum(len(v) for v in vs),
            fresh=fresh,
        )
        if not chosen:
            since = f" at or before objectVersion {obj.version!r}" if obj.version else ""
            raise NotFound(f"{subject}: no enabled version found{since}")
        read = await ctx.gather(cached_get(v) for v in chosen)
        files = [
            OutputFile(f"{obj.file_name}/{i}", obj.mode, data, obj.name)
            for i, (data, _) in enumerate(read)
        ]
        ids = [ObjectVersion(f"{obj.version_id}/{i}", v) for i, (_, v) in enumerate(read)]
        return files, ids

    def close(self) -> None:
        self.identities.clear()
        self._session.close()


def _client_class(kind: ObjectType) -> Callable[..., Any]:
    """The SDK client for ``kind``, imported on first use: each package costs ~2 MiB
    of RSS, and most classes mount secrets only (issue 16)."""
    if kind is ObjectType.SECRET:
        from azure.keyvault.secrets import SecretClient

        return SecretClient
    if kind is ObjectType.KEY:
        from azure.keyvault.keys import KeyClient

        return KeyClient
    from azure.keyvault.certificates import CertificateClient

    return CertificateClient


def _read(client: Any, obj: AzureObject, version: str, *, construct_chain: bool) -> Rendered:
    """One blocking GET and its rendering (runs on the pool)."""
    if obj.type is ObjectType.SECRET:
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
        return render_secret(obj, value, construct_chain=construct_chain), value.version
    if obj.type is ObjectType.KEY:
        key = client.get_key(obj.name, version or None)
        jwk = key.key
        if jwk is None:
            raise _unusable(obj, "no key")
        fields = {
            name: _plain(getattr(jwk, name, None)) for name in ("kty", "n", "e", "crv", "x", "y")
        }
        if not fields["kty"]:
            raise _unusable(obj, "a key without a type (kty)")
        return render_key(obj, fields), _version(obj, key.properties)
    if version:
        cert = client.get_certificate_version(obj.name, version)
    else:
        cert = client.get_certificate(obj.name)
    return render_cert(obj, cert.cer), _version(obj, cert.properties)


def _unusable(obj: AzureObject, what: str) -> Unavailable:
    # Key Vault always sends these: a proxy or a fault answered. Retried; never
    # an empty file or an empty version.
    return Unavailable(f"{obj.describe}: Key Vault's answer has {what}; not a usable answer")


def _version(obj: AzureObject, props: Any) -> str:
    """The object's version id from its Key Vault id; every real answer carries one."""
    version = getattr(props, "version", None)
    if not isinstance(version, str) or not version:
        raise _unusable(obj, "no id (no version)")
    return version


def _history(client: Any, obj: AzureObject) -> list[str]:
    """Versions to mount, newest first: enabled only, by creation time, up to N.

    With objectVersion, the history starts at that version (it and older ones).
    """
    if obj.type is ObjectType.SECRET:
        listed = client.list_properties_of_secret_versions(obj.name)
    elif obj.type is ObjectType.KEY:
        listed = client.list_properties_of_key_versions(obj.name)
    else:
        listed = client.list_properties_of_certificate_versions(obj.name)
    enabled = [p for p in listed if p.enabled and p.version]
    enabled.sort(key=lambda p: p.created_on or _EPOCH, reverse=True)
    ids = [str(p.version) for p in enabled]
    if obj.version:
        if obj.version not in ids:
            return []
        ids = ids[ids.index(obj.version):]
    return ids[: obj.history]


def _plain(value: Any) -> Any:
    """An SDK enum as its wire string (str() of a str-Enum is 'KeyType.RSA')."""
    return getattr(value, "value", value)


def _describe_auth(plan: AzurePlan, request: MountRequest) -> str:
    auth = plan.auth
    if auth.mode is AuthMode.WORKLOAD_IDENTITY:
        return f"workload identity (clientID {auth.client_id!r}, tenant {auth.tenant_id!r})"
    if auth.mode is AuthMode.SERVICE_PRINCIPAL:
        sp = service_principal(request.secrets)
        client = sp.client_id if sp else ""
        return f"service principal (clientid {client!r}, tenant {auth.tenant_id!r})"
    which = f"user-assigned {auth.client_id!r}" if auth.client_id else "system-assigned"
    return f"VM managed identity ({which})"
