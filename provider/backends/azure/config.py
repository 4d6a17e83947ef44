"""The Azure dialect: SecretProviderClass parameters -> a validated, immutable plan.

Accepts what Azure/secrets-store-csi-driver-provider-azure accepts: ``objects``
is a YAML document whose ``array`` holds YAML *strings*, each one object (we
also take plain mappings there). Every value is trimmed, as the peer does.
Unknown keys inside an object are reported (the peer silently ignores typos).
Every problem is reported at once; no network here.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, TypedDict

from provider import dialect, listing
from provider.backends.azure import AzureSettings
from provider.dialect import as_text, fold_keys, parse_bool
from provider.durations import refresh_interval
from provider.encodings import normalize_encoding
from provider.errors import Problems
from provider.paths import path_problem

OBJECT_KEYS = (
    "objectName",
    "objectType",
    "objectAlias",
    "objectVersion",
    "objectVersionHistory",
    "objectFormat",
    "objectEncoding",
    "filePermission",
    # Ours: another vault of the same cloud for this object (several vaults in one class).
    "keyvaultName",
    # Ours: every secret of the vault by name prefix and tags (provider.listing).
    "select",
    # Ours, per object: the Azure provider's --write-cert-and-key-in-separate-files
    # and --construct-pem-chain; a PFX's password from another object (#185);
    # the object's tags and attributes as a JSON file (#1177).
    "writeCertAndKeyInSeparateFiles",
    "constructPEMChain",
    "pfxPasswordFrom",
    "metadataFile",
)
VAULT_NAME = re.compile(r"^[-A-Za-z0-9]{3,24}$")
# The audience AKS workload identity federates on.
WORKLOAD_IDENTITY_AUDIENCE = "api://AzureADTokenExchange"
SP_CLIENT_ID = "clientid"
SP_CLIENT_SECRET = "clientsecret"  # noqa: S105 - a key name, not a secret


@dataclass(frozen=True)
class Cloud:
    name: str
    authority_host: str
    keyvault_dns_suffix: str


# cloudName values as go-autorest's EnvironmentFromName knows them (case-insensitive).
CLOUDS = {
    c.name.lower(): c
    for c in (
        Cloud("AzurePublicCloud", "https://login.microsoftonline.com/", "vault.azure.net"),
        Cloud(
            "AzureUSGovernmentCloud", "https://login.microsoftonline.us/", "vault.usgovcloudapi.net"
        ),
        Cloud("AzureChinaCloud", "https://login.chinacloudapi.cn/", "vault.azure.cn"),
        Cloud("AzureGermanCloud", "https://login.microsoftonline.de/", "vault.microsoftazure.de"),
    )
}


class ObjectType(Enum):
    SECRET = "secret"  # noqa: S105 - an object type name
    KEY = "key"
    CERT = "cert"


class AuthMode(Enum):
    WORKLOAD_IDENTITY = "workload-identity"
    SERVICE_PRINCIPAL = "service-principal"
    VM_MANAGED_IDENTITY = "vm-managed-identity"


@dataclass(frozen=True)
class Auth:
    """How to be the pod. Holds no secret: plans are shared between pods (plan cache)."""

    mode: AuthMode
    tenant_id: str
    # workload identity client, or user-assigned MI ("" = system-assigned);
    # a service principal's comes from each request's nodePublishSecretRef.
    client_id: str


@dataclass(frozen=True)
class ServicePrincipal:
    client_id: str
    secret: str = field(repr=False)

    def fingerprint(self, key: bytes) -> str:
        """A keyed digest of the secret: cache keys change when it rotates, never hold it."""
        return hmac.new(key or b"polysecret", self.secret.encode(), hashlib.sha256).hexdigest()[:16]


SP_MISSING = (
    "no identity to mount as: set 'clientID' (workload identity), or "
    "useVMManagedIdentity: \"true\", or reference a nodePublishSecretRef holding "
    f"the keys {SP_CLIENT_ID!r} and {SP_CLIENT_SECRET!r} (service principal)"
)


def service_principal(secrets: Mapping[str, str]) -> ServicePrincipal | None:
    """nodePublishSecretRef keys, matched case-insensitively (never the tokens key)."""
    folded = {k.lower(): v for k, v in secrets.items()}
    client_id = folded.get(SP_CLIENT_ID, "").strip()
    secret = folded.get(SP_CLIENT_SECRET, "").strip()
    return ServicePrincipal(client_id, secret) if client_id and secret else None


@dataclass(frozen=True)
class AzureObject:
    name: str
    type: ObjectType
    file_name: str
    version: str
    history: int  # > 1: mount that many versions as <file_name>/<index>
    pfx: bool
    encoding: str
    mode: int
    # keyvaultName of this object; "" for the class's vault.
    vault: str = ""
    # --construct-pem-chain: a PFX's certificates ordered leaf -> root by key ids.
    construct_chain: bool = True
    # --write-cert-and-key-in-separate-files: <file>.crt and <file>.key beside a PEM bundle.
    separate: bool = False
    # Every secret matching this, one file each under file_name (name and version unset).
    select: listing.Select | None = None
    # pfxPasswordFrom: the file name of the object whose value encrypts this PFX.
    password_from: str = ""
    # metadataFile: where the object's tags and attributes go, as JSON ("" none).
    metadata_file: str = ""

    @property
    def describe(self) -> str:
        where = f" in vault {self.vault!r}" if self.vault else ""
        if self.select is not None:
            return f"object select {self.select.path!r} (objectType {self.type.value}){where}"
        return f"object {self.name!r} (objectType {self.type.value}){where}"

    def match(self, name: str) -> AzureObject:
        """The plain object for one secret a selection matched: read and named like any."""
        assert self.select is not None
        relative = listing.relative_name(self.select, name, self.describe)
        path = f"{self.file_name}/{relative}" if self.file_name else relative
        return replace(self, name=name, file_name=path, select=None)

    @property
    def version_id(self) -> str:
        # The Azure provider's id; an object of another vault names that vault too.
        if self.vault:
            return f"{self.type.value}/{self.vault}/{self.name}"
        return f"{self.type.value}/{self.name}"


@dataclass(frozen=True)
class AzurePlan:
    vault_name: str
    cloud: Cloud
    auth: Auth
    objects: tuple[AzureObject, ...]
    # refreshInterval in seconds (None: the provider's default; see objectcache).
    refresh_interval: float | None = None


def _cloud(params: Mapping[str, str], problems: Problems) -> Cloud:
    raw = params.get("cloudName", "").strip()
    if not raw:
        return CLOUDS["azurepubliccloud"]
    found = CLOUDS.get(raw.lower())
    if found is None:
        problems.add(
            f"parameter 'cloudName': {raw[:40]!r} is not one of "
            f"{', '.join(c.name for c in CLOUDS.values())} (for a custom cloud such as "
            "AzureStackCloud set the provider flags --azure-authority-host and "
            "--azure-keyvault-dns-suffix)"
        )
        return CLOUDS["azurepubliccloud"]
    return found


def _auth(
    params: Mapping[str, str], secrets: Mapping[str, str] | None, problems: Problems
) -> Auth:
    if parse_bool(params, "usePodIdentity", problems):
        problems.add(
            "parameter 'usePodIdentity': AAD pod identity is deprecated and not supported; "
            "use workload identity (set 'clientID' and federate the service account) or "
            "useVMManagedIdentity"
        )
    # tenantID is the documented spelling; tenantId is what older classes use.
    tenant = params.get("tenantID", "").strip() or params.get("tenantId", "").strip()
    client_id = params.get("clientID", "").strip()
    use_vm = parse_bool(params, "useVMManagedIdentity", problems)
    # The Azure provider's order: an identity mode flag wins; workload identity
    # only when no mode is set (a class with both uses the VM's identity).
    if use_vm:
        mode = AuthMode.VM_MANAGED_IDENTITY
        client_id = params.get("userAssignedIdentityID", "").strip()
    elif client_id:
        mode = AuthMode.WORKLOAD_IDENTITY
    else:
        mode = AuthMode.SERVICE_PRINCIPAL
    if not tenant and mode is not AuthMode.VM_MANAGED_IDENTITY:
        problems.add("parameter 'tenantID' (or 'tenantId') is required: the Azure AD tenant")
    if mode is AuthMode.SERVICE_PRINCIPAL and secrets is not None and (
        service_principal(secrets) is None
    ):
        # Checked here to be reported with every other problem; read again per mount.
        problems.add(SP_MISSING)
    return Auth(mode, tenant, client_id)


def _int(value: Any, where: str, key: str, problems: Problems) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        problems.add(f"{where}: parameter {key!r} must be a whole number")
        return 0
    try:
        number = int(as_text(value))
    except ValueError:
        problems.add(f"{where}: parameter {key!r}: {as_text(value)[:20]!r} is not a whole number")
        return 0
    if number < 0:
        problems.add(f"{where}: parameter {key!r} must not be negative")
        return 0
    return number


def _mapping(raw: Any, where: str, problems: Problems) -> dict[str, Any] | None:
    """One ``array`` item as a mapping of known keys: a YAML string (the peer's shape) or a map."""
    if isinstance(raw, str):
        # Every plain scalar stays text, as in the peer's Go structs: a version
        # id like ``0000`` or ``1e10...`` must not become a number.
        raw = dialect.parse_yaml(raw, where, problems, text_scalars=True)
        if raw is None:
            return None
    if not isinstance(raw, dict):
        problems.add(f"{where} must be a YAML mapping with objectName and objectType")
        return None
    return fold_keys(raw, OBJECT_KEYS, where, problems)


def _type(o: Mapping[str, Any], where: str, problems: Problems) -> ObjectType | None:
    raw_type = as_text(o.get("objectType")).strip()
    try:
        return ObjectType(raw_type.lower())
    except ValueError:
        problems.add(
            f"{where}: parameter 'objectType' {raw_type[:20]!r} must be secret, key or cert"
            if raw_type else f"{where}: parameter 'objectType' is required (secret, key or cert)"
        )
        return None


def _pfx(o: Mapping[str, Any], obj_type: ObjectType, where: str, problems: Problems) -> bool:
    fmt = as_text(o.get("objectFormat")).strip().lower() or "pem"
    if fmt not in ("pem", "pfx"):
        problems.add(f"{where}: parameter 'objectFormat' {fmt[:20]!r} must be pem or pfx")
    elif fmt == "pfx" and obj_type is not ObjectType.SECRET:
        problems.add(
            f"{where}: objectFormat pfx is only for objectType secret (a certificate's secret "
            "holds its PFX); objectType key and cert are always PEM"
        )
    return fmt == "pfx"


def _encoding(o: Mapping[str, Any], obj_type: ObjectType, where: str, problems: Problems) -> str:
    raw_encoding = as_text(o.get("objectEncoding")).strip()
    if not raw_encoding:
        return "utf-8"
    if obj_type is not ObjectType.SECRET:
        problems.add(f"{where}: objectEncoding is only for objectType secret")
    try:
        return normalize_encoding(raw_encoding)
    except ValueError as exc:
        problems.add(f"{where}: parameter 'objectEncoding': {exc}")
        return "utf-8"


def _vault(o: Mapping[str, Any], where: str, problems: Problems) -> str:
    vault = as_text(o.get("keyvaultName")).strip()
    if vault and not VAULT_NAME.match(vault):
        problems.add(
            f"{where}: parameter 'keyvaultName' {vault[:30]!r} is not a Key Vault name "
            "(3-24 letters, digits and dashes)"
        )
    return vault


def _object(
    raw: Any, index: int, default_mode: int, settings: AzureSettings, problems: Problems
) -> AzureObject | None:
    where = f"objects array[{index}]"
    o = _mapping(raw, where, problems)
    if o is None:
        return None
    if o.get("select") is not None:
        return _selection(o, where, default_mode, settings, problems)
    name = as_text(o.get("objectName")).strip()
    if not name:
        problems.add(f"{where}: parameter 'objectName' is required (or 'select')")
        return None
    obj_type = _type(o, f"object {name!r}", problems)
    if obj_type is None:
        return None
    where = f"object {name!r} (objectType {obj_type.value})"
    file_name = as_text(o.get("objectAlias")).strip() or name
    why = path_problem(file_name)
    if why is not None:
        problems.add(f"{where}: file name {file_name[:80]!r} (objectAlias or objectName) {why}")
    return AzureObject(
        vault=_vault(o, where, problems),
        name=name,
        type=obj_type,
        file_name=file_name,
        version=as_text(o.get("objectVersion")).strip(),
        history=_int(o.get("objectVersionHistory"), where, "objectVersionHistory", problems),
        pfx=_pfx(o, obj_type, where, problems),
        encoding=_encoding(o, obj_type, where, problems),
        mode=dialect.file_mode(as_text(o.get("filePermission")), where, default_mode, problems),
        **_extras(o, obj_type, where, settings, problems),
    )


def _flag(o: Mapping[str, Any], key: str, default: bool, where: str, problems: Problems) -> bool:
    raw = o.get(key)
    if raw is None or raw == "":
        return default
    found = Problems()
    value = parse_bool({key: as_text(raw)}, key, found, default)
    problems.extend(f"{where}: {problem}" for problem in found)
    return value


class Extras(TypedDict):
    """The per-object extras' AzureObject fields."""

    construct_chain: bool
    separate: bool
    password_from: str
    metadata_file: str


def _extras(
    o: Mapping[str, Any], obj_type: ObjectType, where: str, settings: AzureSettings,
    problems: Problems,
) -> Extras:
    """The per-object extras: PEM options, a PFX password's object, a metadata file."""
    for key in ("writeCertAndKeyInSeparateFiles", "constructPEMChain", "pfxPasswordFrom"):
        if o.get(key) not in (None, "") and obj_type is not ObjectType.SECRET:
            problems.add(f"{where}: parameter {key!r} is only for objectType secret")
    password_from = as_text(o.get("pfxPasswordFrom")).strip()
    if password_from:
        fmt = as_text(o.get("objectFormat")).strip().lower()
        if fmt != "pfx":
            problems.add(f"{where}: parameter 'pfxPasswordFrom' needs objectFormat: pfx")
        if as_text(o.get("objectEncoding")).strip().lower() == "hex":
            problems.add(
                f"{where}: parameter 'pfxPasswordFrom' does not go with objectEncoding hex"
            )
    metadata = as_text(o.get("metadataFile")).strip()
    why = path_problem(metadata) if metadata else None
    if why is not None:
        problems.add(f"{where}: parameter 'metadataFile': file name {metadata[:80]!r} {why}")
    return Extras(
        construct_chain=_flag(
            o, "constructPEMChain", settings.construct_pem_chain, where, problems
        ),
        separate=_flag(
            o, "writeCertAndKeyInSeparateFiles", settings.separate_cert_and_key, where, problems
        ),
        password_from=password_from,
        metadata_file=metadata,
    )


# Keys that name one object, one version or one file: a selection lists its names instead.
_NOT_WITH_SELECT = (
    "objectName", "objectVersion", "objectVersionHistory", "pfxPasswordFrom", "metadataFile",
)


def _selection(
    o: Mapping[str, Any], where: str, default_mode: int, settings: AzureSettings,
    problems: Problems,
) -> AzureObject | None:
    """An object with ``select``: every enabled secret by name prefix and tags."""
    obj_type = _type(o, where, problems)
    if obj_type is None:
        return None
    if obj_type is not ObjectType.SECRET:
        problems.add(f"{where}: parameter 'select' is only for objectType secret")
        return None
    select = listing.parse(
        o["select"], where, problems,
        provider_max=settings.max_objects, recursive=False, tags=True,
    )
    if select is None:
        return None
    where = f"{where} (select {select.path!r})"
    for key in _NOT_WITH_SELECT:
        if o.get(key) not in (None, ""):
            problems.add(f"{where}: parameter {key!r} does not go with 'select' (it lists names)")
    alias = as_text(o.get("objectAlias")).strip()
    why = path_problem(alias) if alias else None
    if why is not None:
        problems.add(f"{where}: directory {alias[:80]!r} (objectAlias) {why}")
    return AzureObject(
        vault=_vault(o, where, problems), name="", type=obj_type, file_name=alias, version="",
        history=0, pfx=_pfx(o, obj_type, where, problems),
        encoding=_encoding(o, obj_type, where, problems),
        mode=dialect.file_mode(as_text(o.get("filePermission")), where, default_mode, problems),
        select=select,
        **_extras(o, obj_type, where, settings, problems),
    )


def _vault_name(params: Mapping[str, str], problems: Problems) -> str:
    vault = params.get("keyvaultName", "").strip()
    if not vault:
        problems.add("parameter 'keyvaultName' is required")
    elif not VAULT_NAME.match(vault):
        problems.add(
            f"parameter 'keyvaultName': {vault[:40]!r} must be 3-24 characters of [-A-Za-z0-9]"
        )
    return vault


def _objects(
    params: Mapping[str, str], default_mode: int, settings: AzureSettings, problems: Problems
) -> tuple[AzureObject, ...]:
    objects: list[AzureObject] = []
    owners: dict[str, str] = {}
    items = dialect.object_list(params, problems, array=True, text_scalars=True)
    for index, raw in enumerate(items):
        obj = _object(raw, index, default_mode, settings, problems)
        if obj is None:
            continue
        objects.append(obj)
        if obj.select is not None:
            continue  # its files are known once listed (the pipeline checks them then)
        for produced in filter(None, (obj.file_name, obj.metadata_file)):
            if produced in owners:
                problems.add(
                    f"{obj.describe}: file name {produced!r} is already used by object "
                    f"{owners[produced]!r}; set a different objectAlias or metadataFile"
                )
            else:
                owners[produced] = obj.name
    return tuple(_password_source(obj, objects, problems) for obj in objects)


def _password_source(
    obj: AzureObject, objects: list[AzureObject], problems: Problems
) -> AzureObject:
    """``obj`` with its pfxPasswordFrom resolved to that object's file name (checked here).

    The password object is another object of the class, by objectAlias or
    objectName: a single secret version, read (and mounted) like the rest.
    """
    ref = obj.password_from
    if not ref:
        return obj
    others = [o for o in objects if o is not obj and o.select is None]
    source = next((o for o in others if o.file_name == ref), None) or next(
        (o for o in others if o.name == ref), None
    )
    where = f"{obj.describe}: parameter 'pfxPasswordFrom'"
    if source is None:
        problems.add(f"{where}: no other object of the class has objectAlias or objectName {ref!r}")
    elif source.type is not ObjectType.SECRET or source.history > 1 or source.password_from:
        problems.add(
            f"{where}: object {ref!r} must be a plain secret (objectType secret, one version, "
            "no pfxPasswordFrom of its own)"
        )
    else:
        return replace(obj, password_from=source.file_name)
    return obj


def parse_plan(
    params: Mapping[str, str],
    *,
    default_mode: int,
    settings: AzureSettings,
    secrets: Mapping[str, str] | None = None,
) -> AzurePlan:
    """Validate the Azure dialect; raises InvalidParameters listing every problem.

    ``secrets`` (the mount's nodePublishSecretRef) are only checked for a
    service principal's keys, never kept: plans are shared between pods. None
    (an offline check with no request) skips that check.
    """
    problems = Problems()
    vault = _vault_name(params, problems)
    cloud = _cloud(params, problems)
    auth = _auth(params, secrets, problems)
    objects = _objects(params, default_mode, settings, problems)
    refresh = refresh_interval(params, problems)
    problems.raise_if_any()
    return AzurePlan(
        vault_name=vault, cloud=cloud, auth=auth, objects=objects, refresh_interval=refresh
    )
