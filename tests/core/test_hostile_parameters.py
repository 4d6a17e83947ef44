"""Hostile SecretProviderClasses never crash a Mount or come back INTERNAL.

Why this exists: the dialect tests list the mistakes we thought of; this
throws mutated classes of all three dialects (every known key, set to values
of the wrong type, shape or encoding) at the real server over its socket and
checks the one promise that covers them all: each answer is a proper status
(INVALID_ARGUMENT for bad parameters; UNAVAILABLE or DEADLINE_EXCEEDED where
a class is valid and the closed loopback port is tried), never INTERNAL or
UNKNOWN, and never with the pod's token in the message. Two bugs it found
(a broken IPv6 vaultAddress, a JMESPath type error) have their own tests.
The seed is fixed, so a failure reproduces.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
import yaml

from provider.v1alpha1 import service_pb2, service_pb2_grpc
from tests.support.running import RunningProvider, pod_attributes, settings_for

TOKEN = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJob3N0aWxlIn0.c2lnLWhvc3RpbGU"
CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens, connections fail at once
CLOSED_TLS = "https://127.0.0.1:9"

VALUES: list[Any] = [
    "", " ", None, 0, -1, 511, 512, 1e309, "0x10", "0999", "07777", "\x00", "☃", "a" * 300,
    "../x", "/abs", "a//b", "..data", ".", "a/", [], {}, [1], {"a": 1}, True, "true", "False",
    "%", "//", "arn:aws:ssm:us-east-1:1:parameter/x", "arn:aws:secretsmanager:eu-west-1:1:secret:x",
    "arn:aws:", "secret/data/x?version=abc", "v1/secret/data/x", "PUT", "DELETE", "base64", "hex",
    "pem", "pfx", "secret", "key", "cert", "10", "-5", "1.5", "http://[::1", "https://h:99999",
]
TOP: list[Any] = [*VALUES[:20], *VALUES[-2:], "ipv6", "auto", "AzureChinaCloud", "kv-1", "x" * 30]

AWS_OBJECT = {
    "objectName": "app/db", "objectType": "secretsmanager", "objectAlias": "db",
    "objectVersion": "v1", "objectVersionLabel": "AWSCURRENT", "filePermission": "0600",
    "jmesPath": [{"path": "user", "objectAlias": "u", "filePermission": "0400"}],
    "failoverObject": {"objectName": "app/db2"}, "objectEncoding": "base64", "region": "eu-west-1",
}  # fmt: skip
AWS_SELECT = {"objectType": "ssmparameter", "objectAlias": "d", "filePermission": "0600",
              "select": {"path": "/app", "recursive": True, "tags": {"a": "b"},
                         "max": 5}}  # fmt: skip
VAULT_OBJECT = {
    "objectName": "db/pass", "secretPath": "secret/data/db", "secretKey": "pass",
    "method": "GET", "secretArgs": {"a": 1}, "encoding": "utf-8", "filePermission": 0o600,
    "vaultNamespace": "team1", "metadataFile": "db/pass.meta",
}  # fmt: skip
VAULT_SELECT = {
    "objectName": "all", "secretKey": "pass",
    "select": {"path": "secret/data/app/", "recursive": True, "max": 5},
}  # fmt: skip
AZURE_OBJECT = {
    "objectName": "s", "objectType": "secret", "objectAlias": "d/s", "objectVersion": "abc",
    "objectVersionHistory": "2", "objectFormat": "pem", "objectEncoding": "utf-8",
    "filePermission": "0644", "keyvaultName": "kv-2",
}  # fmt: skip
AZURE_SELECT = {
    "objectType": "secret", "objectAlias": "d", "filePermission": "0400", "objectEncoding": "hex",
    "select": {"path": "app-", "tags": {"team": "pay"}, "max": 5, "recursive": False},
}  # fmt: skip
AZURE_EXTRAS = {
    "objectName": "p", "objectType": "secret", "objectFormat": "pfx", "pfxPasswordFrom": "d/s",
    "constructPEMChain": "false", "writeCertAndKeyInSeparateFiles": "true",
    "metadataFile": "m.json",
}  # fmt: skip
AWS_TOP = ["region", "failoverRegion", "pathTranslation", "usePodIdentity", "preferredAddressType",
           "roleArn", "assumeRoleArn", "assumeRoleExternalId", "assumeRoleDurationSeconds"]
VAULT_TOP = ["roleName", "vaultAddress", "vaultNamespace", "vaultAuthMountPath",
             "vaultKubernetesMountPath", "audience", "vaultSkipTLSVerify", "vaultCACertPath",
             "vaultCADirectory", "vaultTLSServerName", "vaultTLSClientCertPath",
             "vaultTLSClientKeyPath"]
AZURE_TOP = ["keyvaultName", "tenantID", "tenantId", "cloudName", "clientID",
             "useVMManagedIdentity", "userAssignedIdentityID", "usePodIdentity"]


def _mutated(rnd: random.Random, obj: dict[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    for _ in range(rnd.randint(1, 2)):
        key = rnd.choice([*out, "bogusKey", "OBJECTNAME"])
        if key == "select" and rnd.random() < 0.5:
            out[key] = _mutated(rnd, out[key])  # one of its keys, not the whole of it
            continue
        if rnd.random() < 0.15:
            out.pop(key, None)
        else:
            out[key] = rnd.choice(VALUES)
    return out


KEYS_ENTRY = {"file": "db", "path": "data.data", "directory": "d", "prefix": "P_",
              "keys": ["a"], "mode": "0400", "keepFile": False}  # fmt: skip
TEMPLATE_ENTRY = {"file": "t", "mode": "0400",
                  "template": "{{ db.a }}{% for x in range(3) %}x{% endfor %}"}  # fmt: skip
TEMPLATES = ["{{ a.b() }}", "{% macro m() %}{% endmacro %}", "{{ x | center(9) }}", "{% if %}",
             "{{ '%s' % x }}", "{% include 'x' %}", "{{ y }}"]  # fmt: skip


def _derived(rnd: random.Random, params: dict[str, str]) -> None:
    """keysAsFiles and templates: the same in every dialect, mutated alike."""
    if rnd.random() < 0.25:
        params["keysAsFiles"] = yaml.safe_dump([_mutated(rnd, KEYS_ENTRY)])
    if rnd.random() < 0.25:
        entry = _mutated(rnd, TEMPLATE_ENTRY)
        if rnd.random() < 0.5:
            entry["template"] = rnd.choice(TEMPLATES)
        params["templates"] = yaml.safe_dump([entry])
    if rnd.random() < 0.05:
        params[rnd.choice(["keysAsFiles", "templates"])] = str(rnd.choice(TOP))


def _top(rnd: random.Random, params: dict[str, str], keys: list[str]) -> dict[str, str]:
    for key in keys:
        if rnd.random() < 0.2:
            params[key] = str(rnd.choice(TOP))
    _derived(rnd, params)
    return params


def aws(rnd: random.Random) -> dict[str, str]:
    objects = [_mutated(rnd, AWS_OBJECT) for _ in range(rnd.randint(1, 3))]
    if rnd.random() < 0.3:
        selection = _mutated(rnd, AWS_SELECT)
        if isinstance(selection.get("select"), dict):
            selection["select"] = _mutated(rnd, selection["select"])
        objects.append(selection)
    base = {"backend": "aws", "region": "us-east-1", "objects": yaml.safe_dump(objects)}
    return _top(rnd, base, AWS_TOP)


def vault(rnd: random.Random) -> dict[str, str]:
    objects = [_mutated(rnd, VAULT_OBJECT) for _ in range(rnd.randint(1, 3))]
    if rnd.random() < 0.3:  # a selection, its own keys mutated too
        entry = _mutated(rnd, VAULT_SELECT)
        if isinstance(entry.get("select"), dict) and rnd.random() < 0.7:
            entry["select"] = _mutated(rnd, entry["select"])
        objects.append(entry)
    base = {"roleName": "app", "vaultAddress": CLOSED, "objects": yaml.safe_dump(objects)}
    return _top(rnd, base, VAULT_TOP)


def azure(rnd: random.Random) -> dict[str, str]:
    count = rnd.randint(1, 3)
    items: list[Any] = [
        yaml.safe_dump(_mutated(rnd, rnd.choice([AZURE_OBJECT, AZURE_SELECT, AZURE_EXTRAS])))
        for _ in range(count)
    ]
    if rnd.random() < 0.1:
        items.append(rnd.choice([5, None, ["x"]]))
    base = {"keyvaultName": "kv1", "tenantID": "t", "clientID": "c",
            "objects": yaml.safe_dump({"array": items})}
    return _top(rnd, base, AZURE_TOP)


DIALECTS: dict[str, Callable[[random.Random], dict[str, str]]] = {
    "aws": aws, "vault": vault, "azure": azure,
}
EXPECTED = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.NOT_FOUND,
}


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from provider.backends.aws import AwsSettings
    from provider.backends.azure import AzureSettings

    sockets = tmp_path_factory.mktemp("hostile")
    # Every endpoint any class could reach is the closed loopback port: a valid
    # class fails fast, and nothing is ever sent off this machine (no STS, Pod
    # Identity agent, Azure AD, IMDS, Key Vault, Vault or Kubernetes API).
    backends = {
        "aws": AwsSettings(region="us-east-1", endpoint_url=CLOSED, pod_identity_endpoint=CLOSED),
        "azure": AzureSettings(authority_host=CLOSED_TLS, keyvault_endpoint=CLOSED_TLS + "/"),
    }
    settings = settings_for(sockets, backends, mount_timeout=3.0, kube_api=CLOSED)
    with (
        pytest.MonkeyPatch.context() as env,
        RunningProvider(settings) as provider,
        grpc.insecure_channel(f"unix:{provider.socket()}") as channel,
    ):
        env.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", CLOSED)  # azure-identity's IMDS host
        yield service_pb2_grpc.CSIDriverProviderStub(channel)


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_mutated_classes_get_a_proper_status(stub: Any, dialect: str) -> None:
    rnd = random.Random(f"hostile-{dialect}")
    seen: dict[str, int] = {}
    for case in range(120):
        params = DIALECTS[dialect](rnd)
        attributes = pod_attributes(
            params,
            tokens={a: TOKEN for a in ("sts.amazonaws.com", "vault", "api://AzureADTokenExchange")},
        )
        request = service_pb2.MountRequest(
            attributes=json.dumps(attributes), secrets="null", target_path="/tmp/t",
            permission="420",
        )  # fmt: skip
        try:
            response = stub.Mount(request, timeout=20)
        except grpc.RpcError as exc:
            code = exc.code()
            assert code in EXPECTED, f"case {case}: {code.name}: {exc.details()}\n{params}"
            assert TOKEN not in (exc.details() or ""), f"case {case} leaked the token"
            assert (exc.details() or "").split(":", 1)[0].isidentifier(), exc.details()
            seen[code.name] = seen.get(code.name, 0) + 1
        else:
            raise AssertionError(f"case {case} mounted against a closed port: {response}")
    # The mutations must reach validation deeply enough to fail it, every time
    # for most of them: a generator gone wrong would make this vacuous.
    assert seen.get("INVALID_ARGUMENT", 0) >= 60, seen
