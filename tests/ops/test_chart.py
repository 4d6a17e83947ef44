"""The chart and the provider agree: every serve flag has a value, every rendered arg parses."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from provider.backends import BACKEND_NAMES
from provider.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "daemonset" / "chart"
HELM = Path(os.environ.get("POLYSECRET_CACHE", Path.home() / ".cache" / "polysecret"))

# Server flags whose value lives somewhere else than provider.<camelCase>.
ELSEWHERE = {
    "--health-addr": ("health", "port"),
    "--metrics-addr": ("metrics", "port"),
    "--hmac-key-file": ("provider", "hmacKey"),
    "--node-name": None,  # NODE_NAME from the downward API, always set
    # In cluster the mounted service-account token and CA; set for out-of-cluster use.
    "--kube-token-file": None,
    "--kube-ca-file": None,
}


def _serve_flags() -> list[str]:
    parser = build_parser()
    serve = next(
        a for a in parser._actions if a.dest == "command"
    ).choices["serve"]  # type: ignore[attr-defined]
    return [
        s for a in serve._actions for s in a.option_strings
        if s.startswith("--") and s not in ("--help",)
    ]


def _camel(kebab: str) -> str:
    head, *rest = kebab.split("-")
    return head + "".join(w.capitalize() for w in rest)


def test_every_serve_flag_has_a_chart_value() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = []
    for flag in _serve_flags():
        backend = next((b for b in BACKEND_NAMES if flag.startswith(f"--{b}-")), None)
        if backend:
            path: tuple[str, ...] | None = (backend, _camel(flag[len(backend) + 3:]))
        elif flag in ELSEWHERE:
            path = ELSEWHERE[flag]
        else:
            path = ("provider", _camel(flag[2:]))
        node: Any = values
        for key in path or ():
            if not isinstance(node, dict) or key not in node:
                missing.append(f"{flag} -> {'.'.join(path or ())}")
                break
            node = node[key]
    assert not missing, f"flags without a chart value: {missing}"


def _container_args(manifest: str) -> list[str]:
    for doc in yaml.safe_load_all(manifest):
        if doc and doc.get("kind") == "DaemonSet":
            return list(doc["spec"]["template"]["spec"]["containers"][0]["args"])
    raise AssertionError("no DaemonSet rendered")


def _parses(args: list[str]) -> Any:
    return build_parser().parse_args(["serve", *args])


def test_plain_manifest_args_parse() -> None:
    args = _container_args((REPO / "daemonset" / "manifests" / "polysecret.yaml").read_text())
    parsed = _parses(args)
    assert parsed.health_addr == ":8098" and parsed.metrics_addr == ":8095"
    assert parsed.socket_dir == "/var/run/secrets-store-csi-providers"


def _helm() -> Path:
    found = sorted(HELM.glob("helm-v*/helm"))
    if not found:
        # Not a skip: on a machine set up by `make install-test` it is always there.
        pytest.fail("helm is not built: run scripts/install-helm.sh (make install-test does)")
    return found[-1]


def test_every_option_renders_to_flags_the_provider_accepts() -> None:
    rendered = subprocess.run(
        [str(_helm()), "template", "polysecret", str(CHART), "--kube-version", "1.34.0",
         "-f", str(REPO / "daemonset" / "ci-values-all.yaml")],
        check=True, capture_output=True, text=True,
    ).stdout
    args = _container_args(rendered)
    parsed = _parses(args)  # argparse exits on an unknown or misspelt flag
    assert parsed.vault_skip_tls_verify is True
    assert parsed.azure_skip_challenge_resource_check is True
    assert parsed.also_serve == ("aws", "azure", "vault")
    backend_flags = {a.split("=")[0] for a in args if re.match(r"--(aws|azure|vault)-", a)}
    expected = {f for f in _serve_flags() if re.match(r"--(aws|azure|vault)-", f)}
    assert backend_flags == expected
