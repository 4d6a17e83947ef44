"""A sample of the generated classes, and hostile driver JSON, through the real server.

test_parsers.py checks the plan functions directly; this checks that the
server around them keeps the same promises over its Unix socket: a proper
status (never INTERNAL or UNKNOWN), no planted token or secret in the
message. Every backend points at a closed loopback port, so a class that
passes validation ends in UNAVAILABLE or DEADLINE_EXCEEDED at once.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provider.backends.aws import AwsSettings
from provider.backends.azure import AzureSettings
from provider.backends.vault import VaultSettings
from provider.request import TOKENS
from provider.v1alpha1 import service_pb2, service_pb2_grpc
from tests.property.strategies import (
    AWS_PARAMS,
    AZURE_PARAMS,
    PLANTED_SECRET,
    PLANTED_TOKEN,
    VAULT_PARAMS,
)
from tests.support.running import RunningProvider, pod_attributes, settings_for

CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens, connections fail at once
SECRETS = {"clientid": "sp-client", "clientsecret": PLANTED_SECRET}
ALLOWED = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.NOT_FOUND,
}


@pytest.fixture(scope="module")
def provider() -> Iterator[RunningProvider]:
    sockets = Path(tempfile.mkdtemp(prefix="psp-", dir="/tmp"))
    backends = {
        "aws": AwsSettings(region="us-east-1", endpoint_url=CLOSED, connect_timeout=0.5),
        "vault": VaultSettings(address=CLOSED, connect_timeout=0.5),
        "azure": AzureSettings(authority_host="https://127.0.0.1:9",
                               keyvault_endpoint="https://127.0.0.1:9/"),
    }
    with RunningProvider(settings_for(sockets, backends, mount_timeout=2.0)) as running:
        yield running
    shutil.rmtree(sockets, ignore_errors=True)


def raw_mount(provider: RunningProvider, attributes: str, secrets: str) -> grpc.RpcError | None:
    with grpc.insecure_channel(f"unix:{provider.socket()}") as channel:
        try:
            service_pb2_grpc.CSIDriverProviderStub(channel).Mount(
                service_pb2.MountRequest(
                    attributes=attributes, secrets=secrets, target_path="/tmp/t",
                    permission="420",
                ),
                timeout=10,
            )
        except grpc.RpcError as exc:
            return exc
    return None


def check(error: grpc.RpcError | None) -> None:
    assert error is not None, "a hostile or unreachable class mounted"
    assert error.code() in ALLOWED, (error.code(), error.details())
    details = error.details() or ""
    assert PLANTED_TOKEN not in details and PLANTED_SECRET not in details


@settings(max_examples=25)
@given(st.one_of(
    AWS_PARAMS.map(lambda p: ("aws", p)),
    VAULT_PARAMS.map(lambda p: ("vault", p)),
    AZURE_PARAMS.map(lambda p: ("azure", p)),
))
def test_generated_classes_through_the_socket(
    provider: RunningProvider, dialect_params: tuple[str, dict[str, str]]
) -> None:
    dialect, params = dialect_params
    audience = {"aws": "sts.amazonaws.com", "vault": "vault"}.get(
        dialect, "api://AzureADTokenExchange"
    )
    attributes = pod_attributes({**params, "backend": dialect}, tokens={audience: PLANTED_TOKEN})
    check(raw_mount(provider, json.dumps(attributes), json.dumps(SECRETS)))


def _deep(n: int) -> str:
    return "[" * n + "]" * n


# Hostile JSON in each field the driver fills: nesting past the parser's
# recursion limit, an integer past Python's 4300-digit limit, a lone surrogate
# (valid JSON, but no UTF-8 string) in a class parameter.
HOSTILE = st.sampled_from([
    ("attributes", '{"objects": ' + _deep(5000) + "}"),
    ("attributes", '{"objects": "x", "n": ' + "7" * 5000 + "}"),
    ("attributes", '{"backend": "aws", "objects": "- objectName: \\ud800"}'),
    ("secrets", '{"k": ' + _deep(5000) + "}"),
    ("secrets", '{"k": ' + "7" * 5000 + "}"),
    ("tokens", json.dumps({"vault": {"token": PLANTED_TOKEN, "x": None}})[:-2]
     + ', "deep": ' + _deep(5000) + "}}"),
])  # fmt: skip


@settings(max_examples=12)
@given(HOSTILE)
def test_malformed_driver_json_is_invalid_argument(
    provider: RunningProvider, field_text: tuple[str, str]
) -> None:
    field, text = field_text
    attributes = json.dumps(pod_attributes({"backend": "vault", "roleName": "r", "objects": "x"}))
    secrets = "null"
    if field == "attributes":
        attributes = text
    elif field == "secrets":
        secrets = text
    else:
        attributes = attributes[:-1] + f", {json.dumps(TOKENS)}: {json.dumps(text)}}}"
    error = raw_mount(provider, attributes, secrets)
    check(error)
    assert error is not None and error.code() is grpc.StatusCode.INVALID_ARGUMENT
