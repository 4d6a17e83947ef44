"""``polysecret lint``: what a Mount would reject, found offline, before a pod starts.

A SecretProviderClass is only checked when a pod mounts it, and its errors
then surface as ``FailedMount`` events on that pod. Lint reads the classes
(a file, or ``kubectl get secretproviderclass -o yaml`` on stdin), and runs
the very checks a Mount runs before its first network call
(:meth:`provider.pipeline.MountPipeline.prepare`): backend choice, the
dialect's parameters and objects, keysAsFiles and templates. No network, no
tokens. It assumes the pod side is right: a nodePublishSecretRef is taken as
present (it lives on the pod's volume, not in the class).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provider import PROVIDER_NAME
from provider.backends import BACKEND_NAMES
from provider.errors import InvalidParameters, ProviderError
from provider.spc import PodContext, SecretProviderClass, build_attributes, spc_from_document

# The pod's nodePublishSecretRef, assumed present (placeholders, never sent anywhere).
ASSUMED_SECRETS = {"clientid": "lint", "clientsecret": "lint"}


@dataclass(frozen=True)
class Finding:
    spc: SecretProviderClass
    backend: str
    problems: tuple[str, ...]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "lint",
        help="check SecretProviderClasses offline, as a Mount would",
        description="Run every check a Mount makes before its first network call on each "
        "SecretProviderClass in the files (or stdin): no network, no tokens. Exits 1 when "
        "any class has a problem.",
    )
    p.add_argument("files", nargs="+", help="YAML files with SecretProviderClasses, - for stdin")
    p.add_argument(
        "--provider-name",
        action="append",
        default=None,
        metavar="NAME",
        help="socket names this provider serves (default: polysecret, aws, azure, vault); "
        "a class for another provider is skipped",
    )


def classes(text: str) -> list[SecretProviderClass]:
    """Every SecretProviderClass in a YAML stream (``kind: List`` items included)."""
    import yaml  # not at import: ``serve`` imports this module for its CLI only

    found: list[SecretProviderClass] = []
    for doc in yaml.safe_load_all(text):
        items = (
            doc.get("items")
            if isinstance(doc, dict) and doc.get("kind", "").endswith("List")
            else [doc]
        )
        for item in items or []:
            if isinstance(item, dict) and item.get("kind") == "SecretProviderClass":
                found.append(spc_from_document(item))
    return found


async def check(pipeline: Any, spc: SecretProviderClass) -> Finding:
    from provider.request import parse_mount_request

    pod = PodContext(name="lint", namespace=spc.namespace or "default", service_account="lint")
    request = parse_mount_request(
        attributes=json.dumps(build_attributes(spc, pod)),
        secrets=json.dumps(ASSUMED_SECRETS),
        permission="420",
    )
    from provider.retry import Deadline

    try:
        prepared = await pipeline.prepare(
            request, served_name=spc.provider, deadline=Deadline.after(120)
        )
    except InvalidParameters as exc:
        return Finding(spc, "", exc.problems)
    except ProviderError as exc:
        return Finding(spc, "", (str(exc),))
    return Finding(spc, prepared.backend, ())


def _pipeline() -> Any:
    from provider.backends import BackendRegistry
    from provider.backends.base import BackendServices
    from provider.cli import build_parser, settings_from
    from provider.pipeline import MountPipeline
    from provider.pools import BackendPools

    # The limits and backend defaults of a provider started without flags
    # (POLYSECRET_* variables apply, as they do to `serve`).
    settings = settings_from(build_parser().parse_args(["serve"]), os.environ)
    return MountPipeline(
        registry=BackendRegistry(
            settings.backends, BackendServices(max_objects=settings.max_objects)
        ),
        pools=BackendPools(1),
        max_parallel=1,
        max_objects=settings.max_objects,
    )


def run(args: argparse.Namespace) -> int:
    import yaml

    served = set(args.provider_name or (PROVIDER_NAME, *BACKEND_NAMES))
    texts = [
        sys.stdin.read() if f == "-" else Path(f).read_text(encoding="utf-8") for f in args.files
    ]
    try:
        found = [spc for text in texts for spc in classes(text)]
    except yaml.YAMLError as exc:
        print(f"lint: not valid YAML: {exc}", file=sys.stderr)
        return 2
    if not found:
        print("lint: no SecretProviderClass found", file=sys.stderr)
        return 2
    pipeline = _pipeline()
    bad = 0
    for spc in found:
        label = f"{spc.namespace or 'default'}/{spc.name}"
        if spc.provider not in served:
            print(f"skip  {label}: spec.provider {spc.provider!r} is not served here")
            continue
        finding = asyncio.run(check(pipeline, spc))
        if not finding.problems:
            print(f"ok    {label} ({finding.backend})")
            continue
        bad += 1
        print(f"FAIL  {label}")
        for problem in finding.problems:
            print(f"      - {problem}")
    return 1 if bad else 0
