"""The Vault dialect: SecretProviderClass parameters -> a validated, immutable plan.

Accepts everything hashicorp/vault-csi-provider accepts (object keys also match
case-insensitively; a string ``filePermission`` such as ``"0600"`` is accepted
too) and reports every problem at once, before any network call. Provider
settings (environment < flags) are merged here, field by field, under the
SecretProviderClass values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, urlsplit

from provider import listing
from provider.backends.vault import VaultSettings, VaultTls
from provider.dialect import as_text, file_mode, fold_keys, object_list, parse_bool
from provider.durations import refresh_interval
from provider.encodings import normalize_encoding
from provider.errors import InvalidPath, Problems
from provider.paths import check_paths

DEFAULT_AUDIENCE = "vault"
OBJECT_KEYS = (
    "objectName",
    "secretPath",
    "secretKey",
    "method",
    "secretArgs",
    "encoding",
    "filePermission",
    # Ours: another Vault namespace for this object (several namespaces in one class).
    "vaultNamespace",
    # Ours: every secret under a path, one file each (provider.listing).
    "select",
    # Ours: a file for the KV v2 version and metadata (data.metadata) as JSON.
    "metadataFile",
)
# The peer passes any method through to Vault; these are the ones Vault's HTTP
# API knows (LIST is Vault's own verb). Anything else is a typo.
METHODS = ("GET", "POST", "PUT", "PATCH", "LIST", "DELETE")
# A request's JSON body (``secretArgs``), as YAML gave it and JSON can carry it.
JsonBody = dict[str, object] | None


@dataclass(frozen=True)
class VaultConnection:
    """Where Vault is and how to talk to it: the key of a reusable HTTP session."""

    address: str
    namespace: str
    tls: VaultTls


@dataclass(frozen=True)
class ReadKey:
    """What makes two objects the same Vault request (the peer forgets ``args``)."""

    path: str
    query: tuple[tuple[str, str], ...]
    method: str
    args_json: str


@dataclass(frozen=True)
class VaultObject:
    object_name: str
    secret_path: str  # as written in the SecretProviderClass (for messages)
    read: ReadKey
    args: JsonBody = field(compare=False, repr=False)
    secret_key: str
    encoding: str
    mode: int
    # Canonical JSON of the object's parameters: the HMAC input besides the content.
    canonical: str = field(repr=False)
    # vaultNamespace of this object; None: the class's.
    namespace: str | None = None
    # ``select``: list this path (``read`` is the LIST) and read every match.
    select: Selection | None = None
    # ``metadataFile``: where the KV v2 ``data.metadata`` goes ("": nowhere).
    metadata_file: str = ""


@dataclass(frozen=True)
class Selection:
    """A ``select`` on a Vault path: what to LIST, and how a listed key is read."""

    spec: listing.Select
    # The LIST path: KV v2 ``<mount>/metadata/<path>/``; KV v1 the path itself.
    list_path: str
    # A match ``key`` is read at ``read_prefix + key``.
    read_prefix: str

    def read_of(self, key: str) -> ReadKey:
        return ReadKey(self.read_prefix + key, (), "GET", "")


def selection(spec: listing.Select, where: str, problems: Problems) -> Selection | None:
    """Where to LIST for ``spec.path``, written like a read path (``secret/data/app/``).

    A path with a ``data`` segment after its mount is KV v2: listed under
    ``metadata`` and read under ``data``, as Vault's own CLI does it; any other
    path (KV v1) is listed and read as written.
    """
    path, query = api_path(spec.path)
    if not path or query:
        problems.add(f"{where}: parameter 'select': 'path' must be an API path without a query "
                     "(such as 'secret/data/app/')")
        return None
    mount, marker, rest = path.partition("/data")
    if marker and mount and (not rest or rest.startswith("/")):
        rest = rest.strip("/")
        under = f"{rest}/" if rest else ""
        return Selection(spec, f"{mount}/metadata/{under}", f"{mount}/data/{under}")
    return Selection(spec, f"{path}/", f"{path}/")


@dataclass(frozen=True)
class VaultPlan:
    role: str
    auth_mount: str
    audience: str
    connection: VaultConnection
    objects: tuple[VaultObject, ...]
    # refreshInterval in seconds (None: the provider's default; see objectcache).
    refresh_interval: float | None = None


def api_path(secret_path: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """``secretPath`` -> (path below ``/v1/``, query pairs), as the peer builds the URL."""
    path, _, query = secret_path.strip().partition("?")
    for prefix in ("/v1/", "v1/", "/"):
        if path.startswith(prefix):
            path = path[len(prefix):]
            break
    return path.strip("/"), tuple(parse_qsl(query, keep_blank_values=True))


def _address(raw: str, problems: Problems) -> str:
    try:
        parts = urlsplit(raw)
        _ = parts.port  # raises on a port that is not a number in 0..65535
        usable = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. "http://[::1": urlsplit refuses a broken IPv6 host
        usable = False
    if not usable:
        problems.add(
            f"parameter 'vaultAddress': {raw[:80]!r} must be an http:// or https:// URL"
        )
    return raw.rstrip("/")


def _tls(params: Mapping[str, str], base: VaultTls, problems: Problems) -> VaultTls:
    def pick(key: str, default: str) -> str:
        value = params.get(key, "").strip()
        return value or default

    skip = base.skip_verify
    if "vaultSkipTLSVerify" in params and params["vaultSkipTLSVerify"].strip():
        skip = parse_bool(params, "vaultSkipTLSVerify", problems)
    tls = VaultTls(
        ca_cert=pick("vaultCACertPath", base.ca_cert),
        ca_directory=pick("vaultCADirectory", base.ca_directory),
        server_name=pick("vaultTLSServerName", base.server_name),
        client_cert=pick("vaultTLSClientCertPath", base.client_cert),
        client_key=pick("vaultTLSClientKeyPath", base.client_key),
        skip_verify=skip,
    )
    if bool(tls.client_cert) != bool(tls.client_key):
        problems.add(
            "parameters 'vaultTLSClientCertPath' and 'vaultTLSClientKeyPath' go together "
            "(a client certificate needs its key)"
        )
    return tls


def _auth_mount(params: Mapping[str, str], default: str, problems: Problems) -> str:
    auth = params.get("vaultAuthMountPath")
    kube = params.get("vaultKubernetesMountPath")
    if auth is not None and kube is not None:
        problems.add(
            "parameters 'vaultAuthMountPath' and 'vaultKubernetesMountPath' are the same "
            "setting; give only one"
        )
    mount = (auth or kube or "").strip().strip("/") or default
    # vault-csi-provider accepts "auth/<mount>" as well as "<mount>".
    return mount.removeprefix("auth/")


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _method(o: Mapping[str, object], where: str, problems: Problems) -> str:
    method = as_text(o.get("method")).upper() or "GET"
    if method not in METHODS:
        problems.add(f"{where}: parameter 'method': {method[:12]!r} must be one of "
                     + ", ".join(METHODS))
    return method


def _args(o: Mapping[str, object], where: str, problems: Problems) -> JsonBody:
    raw = o.get("secretArgs")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.add(f"{where}: parameter 'secretArgs' must be a mapping (the JSON body)")
        return None
    # YAML dates and the like become strings, as Go's YAML->JSON does.
    args: dict[str, object] = json.loads(_canonical(raw))
    return args


def _encoding(o: Mapping[str, object], where: str, problems: Problems) -> str:
    try:
        return normalize_encoding(as_text(o.get("encoding")))
    except ValueError as exc:
        problems.add(f"{where}: parameter 'encoding': {exc}")
        return "utf-8"


def _select(
    o: Mapping[str, object], where: str, provider_max: int, problems: Problems
) -> Selection | None:
    if "select" not in o:
        return None
    for key in ("secretPath", "method", "secretArgs"):
        if key in o:
            problems.add(f"{where}: parameter {key!r} does not go with 'select' (a selection "
                         "reads every match with GET at the path it lists)")
    spec = listing.parse(o["select"], where, problems, provider_max=provider_max,
                         recursive=True, tags=False)
    return selection(spec, where, problems) if spec is not None else None


def _where(
    o: Mapping[str, object], where: str, provider_max: int, problems: Problems
) -> tuple[str, Selection | None, ReadKey]:
    """What the object reads: (the path as written, its selection, its request)."""
    select = _select(o, where, provider_max, problems)
    if select is not None:
        return select.spec.path, select, ReadKey(select.list_path, (), "LIST", "")
    secret_path = as_text(o.get("secretPath"))
    path, query = api_path(secret_path)
    if not path and "select" not in o:
        problems.add(f"{where}: parameter 'secretPath' is required (an API path such as "
                     "'secret/data/app'), or 'select'")
    return secret_path, None, ReadKey(path, query, _method(o, where, problems), "")


def _object(
    raw: object, index: int, default_mode: int, provider_max: int, problems: Problems
) -> VaultObject | None:
    where = f"objects[{index}]"
    if not isinstance(raw, dict):
        problems.add(f"{where} must be a mapping with 'objectName' and 'secretPath'")
        return None
    o = fold_keys(raw, OBJECT_KEYS, where, problems)
    name = as_text(o.get("objectName"))
    if not name:
        problems.add(f"{where}: parameter 'objectName' is required (it is the file path)")
        return None
    where = f"object {name!r}"
    before = len(problems)
    secret_path, select, read = _where(o, where, provider_max, problems)
    args = _args(o, where, problems)
    secret_key = as_text(o.get("secretKey"))
    encoding = _encoding(o, where, problems)
    mode = file_mode(o.get("filePermission"), where, default_mode, problems, integer=True)
    metadata_file = as_text(o.get("metadataFile"))
    if metadata_file and "select" in o:
        problems.add(f"{where}: parameter 'metadataFile' does not go with 'select'")
    namespace: str | None = None
    if "vaultNamespace" in o:
        namespace = _namespace(as_text(o.get("vaultNamespace")), where, problems)
    if len(problems) > before:
        return None
    canonical = _canonical(
        {
            **({"vaultNamespace": namespace} if namespace is not None else {}),
            "objectName": name,
            "secretPath": secret_path,
            "secretKey": secret_key,
            "method": read.method,
            "secretArgs": args,
            "encoding": encoding,
            "filePermission": mode,
            **({"select": repr(select.spec)} if select is not None else {}),
            **({"metadataFile": metadata_file} if metadata_file else {}),
        }
    )
    return VaultObject(
        object_name=name,
        secret_path=secret_path,
        read=replace(read, args_json=_canonical(args) if args is not None else ""),
        args=args,
        secret_key=secret_key,
        encoding=encoding,
        mode=mode,
        canonical=canonical,
        namespace=namespace,
        select=select,
        metadata_file=metadata_file,
    )


def _objects(
    params: Mapping[str, str], default_mode: int, provider_max: int, problems: Problems
) -> list[VaultObject]:
    objects: list[VaultObject] = []
    seen: set[str] = set()
    for index, raw in enumerate(object_list(params, problems)):
        obj = _object(raw, index, default_mode, provider_max, problems)
        if obj is None:
            continue
        if obj.object_name in seen:
            problems.add(
                f"object {obj.object_name!r}: 'objectName' must be unique (it is the file path)"
            )
            continue
        seen.add(obj.object_name)
        objects.append(obj)
    try:
        # The driver's path rules, checked now: no network call for a mount
        # whose files the driver would refuse.
        # A selection's objectName is its directory (its files are known later).
        check_paths([(f"{o.object_name}/*" if o.select else o.object_name, o.object_name)
                     for o in objects]
                    + [(o.metadata_file, o.object_name) for o in objects if o.metadata_file])
    except InvalidPath as exc:
        problems.add(f"parameter 'objectName': {exc.message}")
    return objects


def _namespace(value: str, where: str, problems: Problems) -> str:
    """A Vault namespace as it goes in the X-Vault-Namespace header: printable ASCII only."""
    namespace = value.strip().strip("/")
    if not all(" " <= c <= "~" for c in namespace):
        prefix = f"{where}: " if where else ""
        problems.add(f"{prefix}parameter 'vaultNamespace' may hold printable ASCII characters "
                     "only (it is sent as an HTTP header)")
    return namespace


def parse_plan(
    params: Mapping[str, str],
    *,
    default_mode: int,
    settings: VaultSettings,
    secrets: Mapping[str, str] | None = None,
    max_objects: int = 1000,  # the provider's default --max-objects
) -> VaultPlan:
    """Validate the Vault dialect; raises InvalidParameters listing every problem.

    Only the class parameters and the provider's settings go in (``secrets``,
    the driver's nodePublishSecretRef, is not used by this dialect), so the
    pipeline may share the plan between pods (``cache_plans``). ``max_objects``
    is the provider's bound on a ``select`` (``--max-objects``).
    """
    problems = Problems()
    role = params.get("roleName", "").strip()
    if not role:
        problems.add("parameter 'roleName' is required (the Vault role to log in with)")
    address = _address(params.get("vaultAddress", "").strip() or settings.address, problems)
    namespace = _namespace(params.get("vaultNamespace", ""), "", problems) or settings.namespace
    auth_mount = _auth_mount(params, settings.auth_mount, problems)
    audience = params.get("audience", "").strip() or DEFAULT_AUDIENCE
    tls = _tls(params, settings.tls, problems)
    objects = _objects(params, default_mode, max_objects, problems)
    refresh = refresh_interval(params, problems)
    problems.raise_if_any()
    return VaultPlan(
        role=role,
        auth_mount=auth_mount,
        audience=audience,
        connection=VaultConnection(address, namespace, tls),
        objects=tuple(objects),
        refresh_interval=refresh,
    )
