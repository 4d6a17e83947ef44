"""AWS backend: flags and settings (cheap); the SDK is imported by ``create``."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from provider.dialect import parse_yaml
from provider.errors import Problems

if TYPE_CHECKING:
    from provider.backends.aws.config import AwsPlan
    from provider.backends.base import Backend, BackendServices

# What `pip install 'polysecret[aws]'` brings (provider.backends.installed).
SDK = ("boto3", "botocore")
# The dialect's marks, for the message when no backend claims a class.
DIALECT = "objectType secretsmanager/ssmparameter or an arn:aws: objectName"
_OBJECT_TYPES = ("secretsmanager", "ssmparameter")


@dataclass(frozen=True, kw_only=True)
class AwsSettings:
    # Default region when the SecretProviderClass has none (AWS_REGION).
    region: str = ""
    # Custom endpoint for every AWS service (AWS_ENDPOINT_URL): tests, VPC endpoints.
    endpoint_url: str = ""
    # Overrides the EKS Pod Identity agent address (tests, custom agents).
    pod_identity_endpoint: str = ""
    max_connections: int = 32
    connect_timeout: float = 5.0
    read_timeout: float = 15.0


def add_flags(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--aws-region", default=None, help="default region (env AWS_REGION)")
    group.add_argument(
        "--aws-endpoint-url",
        default=None,
        help="endpoint for all AWS services (env AWS_ENDPOINT_URL)",
    )
    group.add_argument(
        "--aws-pod-identity-endpoint",
        default=None,
        help="EKS Pod Identity agent URL (default: the link-local agent)",
    )


def load_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> AwsSettings:
    return AwsSettings(
        region=args.aws_region
        or environ.get("AWS_REGION")
        or environ.get("AWS_DEFAULT_REGION", ""),
        endpoint_url=args.aws_endpoint_url or environ.get("AWS_ENDPOINT_URL", ""),
        pod_identity_endpoint=args.aws_pod_identity_endpoint or "",
    )


def claims(attributes: Mapping[str, str], problems: Problems) -> bool:
    """An object of a type only AWS has, or named by an AWS ARN."""
    # Through the dialect's bounded parser: inside the pipeline's parse_once
    # block the AWS plan then reuses this very document instead of parsing it again.
    objects = parse_yaml(attributes.get("objects", ""), "parameter 'objects'", problems)
    if not isinstance(objects, list):
        return False
    for item in objects:
        if not isinstance(item, dict):
            continue
        for key, value in item.items():
            if not isinstance(key, str) or not isinstance(value, str):
                continue
            lowered = key.lower()
            if lowered == "objecttype" and value.strip().lower() in _OBJECT_TYPES:
                return True
            if lowered == "objectname" and value.strip().startswith("arn:aws"):
                return True
    return False


def create(settings: AwsSettings | None, services: BackendServices) -> Backend[AwsPlan]:
    from provider.backends.aws.backend import AwsBackend

    return AwsBackend(settings or AwsSettings(), services)
