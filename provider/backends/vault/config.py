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
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from provider.backends.vault import VaultSettings, VaultTls
from provider.dialect import as_text, fold_keys, parse_bool, parse_yaml
from provider.durations import refresh_interval
from provider.encodings import normalize_encoding
from provider.errors import InvalidPath, Problems
from provider.modes import parse_integer_mode
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
)
# The peer passes any method through to Vault; these are the ones Vault's HTTP
# API knows (LIST is Vault's own verb). Anything else is a typo.
METHODS = ("GET", "POST", "PUT", "PATCH", "LIST", "DELETE")


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
    args: Any = field(compare=False, repr=False)
    secret_key: str
    encoding: str
    mode: int
    # Canonical JSON of the object's parameters: the HMAC input besides the content.
    canonical: str = field(repr=False)
    # vaultNamespace of this object; None: the class's.
    namespace: str | None = None


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


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _object(
    raw: Any, index: int, default_mode: int, problems: Problems
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
    ok = True
    secret_path = as_text(o.get("secretPath"))
    path, query = api_path(secret_path)
    if not path:
        problems.add(f"{where}: parameter 'secretPath' is required (an API path such as "
                     "'secret/data/app')")
        ok = False
    method = as_text(o.get("method")).upper() or "GET"
    if method not in METHODS:
        problems.add(f"{where}: parameter 'method': {method[:12]!r} must be one of "
                     + ", ".join(METHODS))
        ok = False
    args_raw = o.get("secretArgs")
    args: Any = None
    if args_raw is not None:
        if not isinstance(args_raw, dict):
            problems.add(f"{where}: parameter 'secretArgs' must be a mapping (the JSON body)")
            ok = False
        else:
            # YAML dates and the like become strings, as Go's YAML->JSON does.
            args = json.loads(_canonical(args_raw))
    secret_key = as_text(o.get("secretKey"))
    try:
        encoding = normalize_encoding(as_text(o.get("encoding")))
    except ValueError as exc:
        problems.add(f"{where}: parameter 'encoding': {exc}")
        encoding = "utf-8"
        ok = False
    mode = default_mode
    raw_mode = o.get("filePermission")
    if raw_mode is not None and raw_mode != "":
        try:
            # The peer treats 0 as "not set".
            mode = parse_integer_mode(raw_mode) or default_mode
        except ValueError as exc:
            problems.add(f"{where}: parameter 'filePermission': {exc}")
            ok = False
    namespace: str | None = None
    if "vaultNamespace" in o:
        namespace = as_text(o.get("vaultNamespace")).strip().strip("/")
    if not ok:
        return None
    canonical = _canonical(
        {
            **({"vaultNamespace": namespace} if namespace is not None else {}),
            "objectName": name,
            "secretPath": secret_path,
            "secretKey": secret_key,
            "method": method,
            "secretArgs": args,
            "encoding": encoding,
            "filePermission": mode,
        }
    )
    return VaultObject(
        object_name=name,
        secret_path=secret_path,
        read=ReadKey(path, query, method, _canonical(args) if args is not None else ""),
        args=args,
        secret_key=secret_key,
        encoding=encoding,
        mode=mode,
        canonical=canonical,
        namespace=namespace,
    )


def parse_plan(
    params: Mapping[str, str], default_mode: int, settings: VaultSettings
) -> VaultPlan:
    """Validate the Vault dialect; raises InvalidParameters listing every problem."""
    problems = Problems()
    role = params.get("roleName", "").strip()
    if not role:
        problems.add("parameter 'roleName' is required (the Vault role to log in with)")
    address = _address(params.get("vaultAddress", "").strip() or settings.address, problems)
    namespace = params.get("vaultNamespace", "").strip().strip("/") or settings.namespace
    auth_mount = _auth_mount(params, settings.auth_mount, problems)
    audience = params.get("audience", "").strip() or DEFAULT_AUDIENCE
    tls = _tls(params, settings.tls, problems)

    objects_text = params.get("objects")
    raw_list: Any = []
    if objects_text is None or not objects_text.strip():
        problems.add("parameter 'objects' is required (a YAML list of objects)")
    else:
        raw_list = parse_yaml(objects_text, "parameter 'objects'", problems)
        if raw_list is None:
            raw_list = []
        if not isinstance(raw_list, list):
            problems.add("parameter 'objects' must be a YAML list")
            raw_list = []
        elif not raw_list and not problems:
            problems.add("parameter 'objects' lists no objects")

    objects: list[VaultObject] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_list):
        obj = _object(raw, index, default_mode, problems)
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
        check_paths([(o.object_name, o.object_name) for o in objects])
    except InvalidPath as exc:
        problems.add(f"parameter 'objectName': {exc.message}")
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
