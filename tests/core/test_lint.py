"""`polysecret lint`: the shipped examples pass, broken copies fail, and the server agrees."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml

from provider.backends import load_all_settings
from provider.cli import build_parser
from provider.lint import classes
from provider.mountcli import mount_once
from provider.spc import PodContext, build_attributes
from tests.support.running import RunningProvider, settings_for

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "daemonset" / "examples").glob("*secretproviderclass.yaml"))


def _lint(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "provider", "lint", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _example(stem: str) -> dict[str, object]:
    for doc in yaml.safe_load_all((ROOT / "daemonset/examples" / f"{stem}.yaml").read_text()):
        if isinstance(doc, dict) and doc.get("kind") == "SecretProviderClass":
            return doc
    raise LookupError(stem)


def _broken(stem: str, **parameters: str) -> dict[str, object]:
    doc = _example(stem)
    spec = dict(doc["spec"])  # type: ignore[call-overload]
    spec["parameters"] = {**spec["parameters"], **parameters}
    doc = {**doc, "spec": spec, "metadata": {"name": f"broken-{stem}", "namespace": "team"}}
    return doc


# Each: a broken copy of an example, and a phrase its problem must contain.
BROKEN = [
    pytest.param(
        _broken(
            "aws-secretproviderclass",
            objects="- objectName: db\n  objectType: secretsmanager\n  objectVersoin: v1\n",
        ),
        "unknown key 'objectVersoin'",
        id="aws-typo",
    ),
    pytest.param(
        _broken(
            "vault-secretproviderclass",
            objects="- objectName: a\n  secretPath: secret/data/a\n  filePermission: 999\n",
        ),
        "filePermission",
        id="vault-mode",
    ),
    pytest.param(
        _broken(
            "vault-secretproviderclass",
            objects="- objectName: all\n  select: {path: secret/data/app/, tags: {team: a}}\n",
        ),
        "'tags' does not apply",
        id="vault-select",
    ),
    pytest.param(
        _broken("azure-secretproviderclass", tenantID="", tenantId=""),
        "tenantID",
        id="azure-tenant",
    ),
    pytest.param(
        _broken(
            "aws-secretproviderclass",
            objects="- objectType: ssmparameter\n  select: {path: /app, tags: {team: pay}}\n",
        ),
        "'tags' does not apply",
        id="aws-select",
    ),
    pytest.param(
        _broken(
            "aws-secretproviderclass",
            assumeRoleArn="arn:aws:iam::444455556666:role/x",
            assumeRoleDurationSeconds="60",
        ),
        "'assumeRoleDurationSeconds'",
        id="aws-chained-role",
    ),
    pytest.param(
        _broken("aws-secretproviderclass", backend="gcp"),
        "parameter 'backend'",
        id="unknown-backend",
    ),
    pytest.param(
        _broken("vault-secretproviderclass", templates="- file: x\n  template: '{{ a.b() }}'"),
        "only range() may be called",
        id="template",
    ),
    pytest.param(
        _broken("azure-secretproviderclass", keysAsFiles="- file: a\n  prefix: x/y"),
        "must not contain '/'",
        id="keys-as-files",
    ),
]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_every_shipped_example_passes(example: Path) -> None:
    done = _lint(str(example))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok    default/")


@pytest.mark.parametrize(("doc", "expected"), BROKEN)
def test_a_broken_copy_fails_naming_the_problem(doc: dict[str, object], expected: str) -> None:
    done = _lint("-", stdin=yaml.safe_dump(doc))
    assert done.returncode == 1
    assert "FAIL  team/broken-" in done.stdout and expected in done.stdout


def test_a_kubectl_list_from_stdin_and_skipping_other_providers() -> None:
    good = _example("vault-secretproviderclass")
    other = {**good, "metadata": {"name": "gcp-one"}, "spec": {"provider": "gcp", "parameters": {}}}
    listing = {"apiVersion": "v1", "kind": "List", "items": [good, other]}
    done = _lint("-", stdin=yaml.safe_dump(listing))
    assert done.returncode == 0, done.stdout
    assert "ok    default/app-vault-secrets (vault)" in done.stdout
    assert "skip  default/gcp-one" in done.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProvider]:
    settings = load_all_settings(build_parser().parse_args(["serve"]), {})
    with RunningProvider(settings_for(tmp_path_factory.mktemp("lint"), settings)) as provider:
        yield provider


@pytest.mark.parametrize(("doc", "expected"), BROKEN)
def test_the_server_answers_the_same_class_with_the_same_problems(
    server: RunningProvider, doc: dict[str, object], expected: str
) -> None:
    (spc,) = classes(yaml.safe_dump(doc))
    attributes = build_attributes(spc, PodContext(namespace="team", service_account="app"))
    with pytest.raises(grpc.RpcError) as caught:
        mount_once(
            socket=server.socket(),
            attributes=attributes,
            secrets={"clientid": "x", "clientsecret": "y"},
            target=Path("/tmp/unused"),
            timeout=30,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = caught.value.details() or ""
    done = _lint("-", stdin=yaml.safe_dump(doc))
    listed = [line.strip()[2:] for line in done.stdout.splitlines() if line.startswith("      - ")]
    assert listed and all(problem in details for problem in listed), (listed, details)
    assert expected in details
