"""The AWS dialect: SecretProviderClass parameters -> a validated, immutable plan.

Accepts everything aws/secrets-store-csi-driver-provider-aws accepts and
reports every problem at once. This module reads the class-level parameters
(region, failover, identity, chained role); each entry of ``objects`` is read
in ``objects``. No network here: regions that still need the node's label are
resolved, and ARNs checked against them, at fetch time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from provider.backends.aws import AwsSettings
from provider.backends.aws.objects import AwsObject, check_arn_region, parse_arn, parse_objects
from provider.backends.base import BackendServices
from provider.dialect import object_list, parse_bool
from provider.durations import refresh_interval
from provider.errors import Problems

ADDRESS_TYPES = ("auto", "ipv4", "ipv6")


@dataclass(frozen=True)
class AwsPlan:
    objects: tuple[AwsObject, ...]
    # Empty: not known without the Kubernetes API (resolved at fetch time).
    region: str
    failover_region: str
    use_pod_identity: bool
    address_type: str
    role_arn: str
    # refreshInterval in seconds (None: the provider's default; see objectcache).
    refresh_interval: float | None = None
    # A second role assumed with the pod's credentials (cross-account); None: none.
    chained: ChainedRole | None = None


@dataclass(frozen=True)
class ChainedRole:
    """``assumeRoleArn`` and its options: sts:AssumeRole after the pod's own credentials."""

    arn: str
    external_id: str = ""
    duration: int = 3600


# sts:AssumeRole's bounds: DurationSeconds, and ExternalId's length and characters.
MIN_DURATION, MAX_DURATION = 900, 43200


_EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}", re.ASCII)


def _chained_role(params: Mapping[str, str], problems: Problems) -> ChainedRole | None:
    arn = params.get("assumeRoleArn", "").strip()
    external_id = params.get("assumeRoleExternalId", "")
    raw_duration = params.get("assumeRoleDurationSeconds", "").strip()
    if not arn:
        for name, value in (
            ("assumeRoleExternalId", external_id),
            ("assumeRoleDurationSeconds", raw_duration),
        ):
            if value:
                problems.add(f"parameter {name!r} needs 'assumeRoleArn'")
        return None
    parsed = parse_arn(arn)
    if parsed is None or parsed.service != "iam" or not parsed.resource.startswith("role/"):
        problems.add(
            "parameter 'assumeRoleArn': must be an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
        )
    if external_id and not _EXTERNAL_ID.fullmatch(external_id):
        problems.add("parameter 'assumeRoleExternalId': 2 to 1224 letters, digits or +=,.@:/-_")
    duration = 3600
    if raw_duration:
        try:
            duration = int(raw_duration)
        except ValueError:
            duration = 0
        if not MIN_DURATION <= duration <= MAX_DURATION:
            problems.add(
                f"parameter 'assumeRoleDurationSeconds': {raw_duration[:20]!r} must be a whole "
                f"number of seconds from {MIN_DURATION} to {MAX_DURATION}"
            )
    return ChainedRole(arn, external_id, duration)


def _translation(params: Mapping[str, str], problems: Problems) -> str | None:
    raw = params.get("pathTranslation", "")
    if raw == "":
        return "_"
    if raw.lower() == "false":
        return None
    if len(raw) != 1:
        problems.add(
            f"parameter 'pathTranslation': {raw[:20]!r} must be \"False\" or a single character"
        )
        return "_"
    return raw


def parse_plan(
    params: Mapping[str, str],
    *,
    default_mode: int,
    settings: AwsSettings,
    secrets: Mapping[str, str] | None = None,
    max_objects: int = BackendServices.max_objects,
) -> AwsPlan:
    """Validate the AWS dialect; raises InvalidParameters listing every problem.

    ``secrets`` (nodePublishSecretRef) is unused: AWS reads as the pod's own
    identity. ``max_objects`` is the provider's bound on one ``select``.
    """
    del secrets
    problems = Problems()
    region = params.get("region", "").strip() or settings.region
    failover_region = params.get("failoverRegion", "").strip()
    if failover_region and failover_region == region:
        problems.add("parameter 'failoverRegion' must differ from 'region'")
    translation = _translation(params, problems)
    use_pod_identity = parse_bool(params, "usePodIdentity", problems)
    address_type = params.get("preferredAddressType", "").strip().lower() or "auto"
    if address_type not in ADDRESS_TYPES:
        # The AWS provider falls back to auto for unknown values; so do we
        # (rejecting would break classes that work there today).
        address_type = "auto"
    role_arn = params.get("roleArn", "").strip()
    role = parse_arn(role_arn) if role_arn else None
    if role_arn and (role is None or role.service != "iam"):
        problems.add(
            "parameter 'roleArn': must be an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
        )

    objects = parse_objects(
        object_list(params, problems),
        default_mode=default_mode,
        translation=translation,
        failover_region=failover_region,
        max_objects=max_objects,
        problems=problems,
    )
    if region:
        for obj in objects:
            problems.extend(check_arn_region(obj, region, failover_region))
    refresh = refresh_interval(params, problems)
    chained = _chained_role(params, problems)
    problems.raise_if_any()
    return AwsPlan(
        objects=tuple(objects),
        region=region,
        failover_region=failover_region,
        use_pod_identity=use_pod_identity,
        address_type=address_type,
        role_arn=role_arn,
        refresh_interval=refresh,
        chained=chained,
    )
