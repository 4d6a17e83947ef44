"""The AWS dialect's objects: each entry of the ``objects`` parameter, validated.

Keys of an object match case-insensitively, as Go's JSON decoding does in
aws/secrets-store-csi-driver-provider-aws; every problem is reported at once,
and the file names of all objects are checked against each other and the
driver's path rules before any network call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

import jmespath
import jmespath.exceptions
from jmespath.parser import ParsedResult

from provider import listing
from provider.dialect import as_text, file_mode, fold_keys
from provider.encodings import normalize_encoding
from provider.errors import InvalidPath, Problems
from provider.listing import Select
from provider.paths import check_paths, path_problem

OBJECT_KEYS = (
    "objectName",
    "objectType",
    "objectAlias",
    "objectVersion",
    "objectVersionLabel",
    "filePermission",
    "jmesPath",
    "failoverObject",
    # Ours (the AWS provider has none): how the value is stored, decoded before writing.
    "objectEncoding",
    # Ours: another region for this object (several regions in one class).
    "region",
    # Ours: every parameter under a path / secret under a name prefix (provider.listing).
    "select",
)


JMES_KEYS = ("path", "objectAlias", "filePermission")


FAILOVER_KEYS = ("objectName", "objectVersion", "objectVersionLabel")


# us-east-1, eu-central-2, us-gov-west-1, cn-north-1, ap-southeast-5 ...
_REGION_NAME = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")


class ObjectType(Enum):
    SECRETS_MANAGER = "secretsmanager"
    SSM_PARAMETER = "ssmparameter"


# ARN service -> object type (an SSM ARN says "ssm").
_ARN_SERVICES = {"secretsmanager": ObjectType.SECRETS_MANAGER, "ssm": ObjectType.SSM_PARAMETER}


@dataclass(frozen=True)
class Arn:
    partition: str
    service: str
    region: str
    account: str
    resource: str


def parse_arn(text: str) -> Arn | None:
    parts = text.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or not all(parts[1:3]) or not parts[5]:
        return None
    return Arn(*parts[1:])


@dataclass(frozen=True)
class JmesFile:
    expression: str
    file_name: str
    mode: int
    compiled: ParsedResult = field(compare=False, repr=False)


@dataclass(frozen=True)
class Selector:
    """Which version of a named object to read."""

    name: str
    version: str = ""
    label: str = ""


@dataclass(frozen=True)
class AwsObject:
    object_name: str
    object_type: ObjectType
    file_name: str
    mode: int
    primary: Selector
    # Only when failoverRegion is set: what to read there.
    failover: Selector | None
    jmes: tuple[JmesFile, ...]
    arn: Arn | None
    failover_arn: Arn | None
    # objectEncoding: utf-8 (as stored), base64 or hex (decoded into the file).
    encoding: str = "utf-8"
    # region of this object; "" for the class's.
    region: str = ""
    # Set: a selection (GetParametersByPath, ListSecrets) mounted under the
    # directory ``file_name`` ("" for the volume's top); ``object_name`` is its path.
    select: Select | None = None


def translate(name: str, translation: str | None) -> str:
    """File name for an object name or alias, as the AWS provider computes it."""
    if translation:
        return name.replace("/", translation)
    return name.lstrip("/")


def check_arn_region(obj: AwsObject, region: str, failover_region: str) -> list[str]:
    """ARN regions must be the primary (and failover object's the failover) region."""
    out: list[str] = []
    region = obj.region or region
    if obj.arn and obj.arn.region != region:
        out.append(
            f"object {obj.object_name!r}: parameter 'objectName': ARN region "
            f"{obj.arn.region!r} must match the region {region!r}"
        )
    if obj.failover_arn and obj.failover_arn.region != failover_region:
        out.append(
            f"object {obj.object_name!r}: parameter 'failoverObject.objectName': ARN region "
            f"{obj.failover_arn.region!r} must match failoverRegion {failover_region!r}"
        )
    return out


def _object_type(
    name: str, raw_type: str, where: str, field_name: str, problems: Problems
) -> tuple[ObjectType | None, Arn | None]:
    arn: Arn | None = None
    arn_type: ObjectType | None = None
    if name.startswith("arn:"):
        arn = parse_arn(name)
        if arn is None:
            problems.add(f"{where}: parameter {field_name!r}: not a valid ARN")
            return None, None
        arn_type = _ARN_SERVICES.get(arn.service)
        if arn_type is None and not raw_type:
            problems.add(
                f"{where}: parameter {field_name!r}: ARN service {arn.service!r} is neither "
                "secretsmanager nor ssm"
            )
    declared: ObjectType | None = None
    if raw_type:
        try:
            declared = ObjectType(raw_type.lower())
        except ValueError:
            problems.add(
                f"{where}: parameter 'objectType': {raw_type[:30]!r} must be secretsmanager "
                "or ssmparameter"
            )
            return None, arn
    elif arn is None:
        problems.add(
            f"{where}: parameter 'objectType' is required unless 'objectName' is a full ARN"
        )
        return None, None
    if declared and arn_type and declared != arn_type:
        problems.add(f"{where}: parameter 'objectType' {raw_type!r} does not match the ARN")
    return declared or arn_type, arn


def _jmes_entries(
    raw: object, where: str, translation: str | None, default_mode: int, problems: Problems
) -> tuple[JmesFile, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.add(f"{where}: parameter 'jmesPath' must be a list")
        return ()
    out: list[JmesFile] = []
    for i, entry in enumerate(raw):
        at = f"{where}: jmesPath[{i}]"
        if not isinstance(entry, dict):
            problems.add(f"{at} must be a mapping with 'path' and 'objectAlias'")
            continue
        e = fold_keys(entry, JMES_KEYS, at, problems)
        path, alias = as_text(e.get("path")), as_text(e.get("objectAlias"))
        if not path:
            problems.add(f"{at}: parameter 'path' is required")
        if not alias:
            problems.add(f"{at}: parameter 'objectAlias' is required")
        if not path or not alias:
            continue
        try:
            compiled = jmespath.compile(path)
        except jmespath.exceptions.JMESPathError:
            problems.add(
                f"{at}: parameter 'path': {path[:60]!r} is not a valid JMESPath expression"
            )
            continue
        mode = file_mode(e.get("filePermission"), at, default_mode, problems)
        out.append(JmesFile(path, translate(alias, translation), mode, compiled))
    return tuple(out)


def _failover(raw: object, where: str, problems: Problems) -> tuple[Selector, str] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.add(f"{where}: parameter 'failoverObject' must be a mapping")
        return None
    f = fold_keys(raw, FAILOVER_KEYS, f"{where}: failoverObject", problems)
    name = as_text(f.get("objectName"))
    if not name:
        problems.add(f"{where}: parameter 'failoverObject.objectName' is required")
        return None
    sel = Selector(name, as_text(f.get("objectVersion")), as_text(f.get("objectVersionLabel")))
    return sel, name


def parse_objects(
    raw_list: list[object],
    *,
    default_mode: int,
    translation: str | None,
    failover_region: str,
    max_objects: int,
    problems: Problems,
) -> list[AwsObject]:
    """Every usable entry of ``objects``; their file names checked against each other."""
    objects: list[AwsObject] = []
    files: dict[str, str] = {}
    for index, raw in enumerate(raw_list):
        if isinstance(raw, dict) and any(str(k).lower() == "select" for k in raw):
            selection = _parse_selection(index, raw, default_mode, max_objects, problems)
            if selection is not None:
                objects.append(selection)
            continue
        obj = _parse_object(
            index,
            raw,
            default_mode=default_mode,
            translation=translation,
            failover_region=failover_region,
            problems=problems,
        )
        if obj is None:
            continue
        for produced in (obj.file_name, *(j.file_name for j in obj.jmes)):
            if produced in files:
                problems.add(
                    f"object {obj.object_name!r}: file name {produced!r} is already used by "
                    f"object {files[produced]!r}"
                )
            else:
                files[produced] = obj.object_name
        objects.append(obj)
    try:
        # File names are known now: check the driver's path rules before any
        # network call, so a bad alias is reported with every other problem
        # instead of after (or hidden behind) a fetch error.
        check_paths([(path, owner) for path, owner in files.items()])
    except InvalidPath as exc:
        problems.add(exc.message)
    return objects


def _encoding_and_region(
    o: Mapping[str, object], where: str, problems: Problems
) -> tuple[str, str]:
    """An object's ``objectEncoding`` and own ``region`` (ours, both; named or selected)."""
    try:
        encoding = normalize_encoding(as_text(o.get("objectEncoding")))
    except ValueError as exc:
        problems.add(f"{where}: parameter 'objectEncoding': {exc}")
        encoding = "utf-8"
    region = as_text(o.get("region"))
    if region and not _REGION_NAME.match(region):
        problems.add(f"{where}: parameter 'region': {region[:30]!r} is not an AWS region name")
    return encoding, region


# What a selection's entries share with each other; the rest names one entry.
SELECT_KEYS = ("objectType", "objectAlias", "filePermission", "objectEncoding", "region", "select")


def _parse_selection(
    index: int,
    raw: Mapping[object, object],
    default_mode: int,
    max_objects: int,
    problems: Problems,
) -> AwsObject | None:
    """An object with ``select``: every SSM parameter under a path or secret under a prefix."""
    where = f"objects[{index}]"
    o = fold_keys(raw, OBJECT_KEYS, where, problems)
    for key in OBJECT_KEYS:
        if key not in SELECT_KEYS and o.get(key) not in (None, ""):
            problems.add(
                f"{where}: parameter {key!r} does not apply with 'select' (it names one entry)"
            )
    raw_type = as_text(o.get("objectType"))
    try:
        obj_type: ObjectType | None = ObjectType(raw_type.lower())
    except ValueError:
        problems.add(
            f"{where}: parameter 'objectType' is required with 'select': secretsmanager "
            "or ssmparameter"
        )
        obj_type = None
    ssm = obj_type is ObjectType.SSM_PARAMETER
    select = listing.parse(
        o.get("select"), where, problems, provider_max=max_objects, recursive=ssm, tags=not ssm
    )
    if select is not None and ssm and not select.path.startswith("/"):
        problems.add(f"{where}: parameter 'select': an SSM 'path' starts with '/' (a hierarchy)")
    alias = as_text(o.get("objectAlias")).strip("/")
    why = path_problem(alias) if alias else None
    if why is not None:
        problems.add(f"{where}: parameter 'objectAlias': {alias[:80]!r} {why}")
    mode = file_mode(o.get("filePermission"), where, default_mode, problems)
    encoding, own_region = _encoding_and_region(o, where, problems)
    if obj_type is None or select is None:
        return None
    return AwsObject(
        object_name=select.path,
        object_type=obj_type,
        file_name=alias,
        mode=mode,
        primary=Selector(select.path),
        failover=None,
        jmes=(),
        arn=None,
        failover_arn=None,
        encoding=encoding,
        region=own_region,
        select=select,
    )


def _failover_of(
    o: Mapping[str, object],
    where: str,
    *,
    primary: Selector,
    obj_type: ObjectType | None,
    failover_region: str,
    problems: Problems,
) -> tuple[Selector | None, Arn | None]:
    """What to read in ``failoverRegion``: ``failoverObject``, else the same name; and its ARN."""
    fo = _failover(o.get("failoverObject"), where, problems)
    if fo is None:
        # The same name in the other region (the AWS provider does the same).
        return (primary if failover_region else None), None
    sel, fo_name = fo
    if not as_text(o.get("objectAlias")):
        problems.add(f"{where}: parameter 'objectAlias' is required with 'failoverObject'")
    if not failover_region:
        problems.add(f"{where}: 'failoverObject' needs the parameter 'failoverRegion'")
    if sel.version != primary.version:
        problems.add(f"{where}: 'failoverObject.objectVersion' must equal 'objectVersion'")
    if obj_type is ObjectType.SSM_PARAMETER and sel.version and sel.label:
        problems.add(f"{where}: failoverObject takes objectVersion or objectVersionLabel, not both")
    fo_type, failover_arn = _object_type(
        fo_name,
        as_text(o.get("objectType")) or (obj_type.value if obj_type else ""),
        where,
        "failoverObject.objectName",
        problems,
    )
    if fo_type and obj_type and fo_type != obj_type:
        problems.add(f"{where}: 'failoverObject' is not of the same type as the object")
    return sel, failover_arn


def _parse_object(
    index: int,
    raw: object,
    *,
    default_mode: int,
    translation: str | None,
    failover_region: str,
    problems: Problems,
) -> AwsObject | None:
    """One entry of ``objects``; None (with problems recorded) when unusable."""
    where = f"objects[{index}]"
    if not isinstance(raw, dict):
        problems.add(f"{where} must be a mapping with 'objectName'")
        return None
    o = fold_keys(raw, OBJECT_KEYS, where, problems)
    name = as_text(o.get("objectName"))
    if not name:
        problems.add(f"{where}: parameter 'objectName' is required")
        return None
    where = f"object {name!r}"
    obj_type, arn = _object_type(name, as_text(o.get("objectType")), where, "objectName", problems)
    alias = as_text(o.get("objectAlias"))
    version, label = as_text(o.get("objectVersion")), as_text(o.get("objectVersionLabel"))
    if obj_type is ObjectType.SSM_PARAMETER and version and label:
        problems.add(
            f"{where}: SSM parameters take 'objectVersion' or 'objectVersionLabel', not both"
        )
    mode = file_mode(o.get("filePermission"), where, default_mode, problems)
    failover_sel, failover_arn = _failover_of(
        o,
        where,
        primary=Selector(name, version, label),
        obj_type=obj_type,
        failover_region=failover_region,
        problems=problems,
    )
    file_name = translate(alias or name, translation)
    jmes = _jmes_entries(o.get("jmesPath"), where, translation, mode, problems)
    encoding, own_region = _encoding_and_region(o, where, problems)
    if obj_type is None:
        return None
    return AwsObject(
        object_name=name,
        object_type=obj_type,
        file_name=file_name,
        mode=mode,
        primary=Selector(name, version, label),
        failover=failover_sel,
        jmes=jmes,
        arn=arn,
        failover_arn=failover_arn,
        encoding=encoding,
        region=own_region,
    )
