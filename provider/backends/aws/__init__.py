"""AWS backend: flags and settings (cheap); the SDK is imported by ``create``."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


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


def create(settings: AwsSettings | None, services: Any) -> Any:
    from provider.backends.aws.backend import AwsBackend

    return AwsBackend(settings or AwsSettings(), services)
