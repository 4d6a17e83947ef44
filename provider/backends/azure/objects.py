"""The Azure dialect's ``objects``: each item of its ``array`` -> a validated AzureObject.

Items are YAML *strings* as the Azure provider reads them (plain mappings are
taken too); every value is trimmed, and unknown keys are reported (the peer
silently ignores typos). Besides the peer's keys: a per-object
``keyvaultName``, ``select`` (every secret by name prefix and tags), the PEM
flags per object, ``pfxPasswordFrom`` and ``metadataFile``. Cross-object rules
(file names used twice, a PFX password's object) are checked here too, so
every problem is reported before any network call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, TypedDict

from provider import dialect, listing
from provider.backends.azure import AzureSettings
from provider.dialect import as_text, fold_keys, parse_bool
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
class ObjectType(Enum):
    SECRET = "secret"  # noqa: S105 - an object type name
    KEY = "key"
    CERT = "cert"


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


def _object(  # noqa: PLR0917 - the parse state, passed down as the other helpers take it
    raw: Any, index: int, default_mode: int, settings: AzureSettings, provider_max: int,
    problems: Problems,
) -> AzureObject | None:
    where = f"objects array[{index}]"
    o = _mapping(raw, where, problems)
    if o is None:
        return None
    if o.get("select") is not None:
        return _selection(o, where, default_mode, settings, provider_max, problems)
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


def _selection(  # noqa: PLR0917 - the parse state, passed down as the other helpers take it
    o: Mapping[str, Any], where: str, default_mode: int, settings: AzureSettings,
    provider_max: int, problems: Problems,
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
        provider_max=provider_max, recursive=False, tags=True,
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


def parse_objects(
    params: Mapping[str, str],
    default_mode: int,
    settings: AzureSettings,
    problems: Problems,
    *,
    provider_max: int,
) -> tuple[AzureObject, ...]:
    objects: list[AzureObject] = []
    owners: dict[str, str] = {}
    items = dialect.object_list(params, problems, array=True, text_scalars=True)
    for index, raw in enumerate(items):
        obj = _object(raw, index, default_mode, settings, provider_max, problems)
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
