"""Properties of the request parser and the three dialects' plans, on generated input.

For every request and SecretProviderClass the strategies produce:

* the only exceptions are the provider's own, and never one that becomes
  INTERNAL: bad input is INVALID_ARGUMENT;
* no message quotes the planted service-account token or secret value;
* an accepted plan writes only paths the driver accepts, all inside the volume.

The plan functions are called directly (thousands of examples in seconds);
test_socket.py sends a smaller sample through the real server.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable
from typing import Any

import grpc
from hypothesis import event, given
from hypothesis import strategies as st

from provider.backends.aws import AwsSettings
from provider.backends.aws.config import AwsPlan
from provider.backends.aws.config import parse_plan as aws_plan
from provider.backends.azure import AzureSettings
from provider.backends.azure.config import AzurePlan
from provider.backends.azure.config import parse_plan as azure_plan
from provider.backends.vault import VaultSettings
from provider.backends.vault.config import VaultPlan
from provider.backends.vault.config import parse_plan as vault_plan
from provider.errors import InvalidRequest, ProviderError
from provider.paths import path_problem
from provider.request import parse_mount_request
from provider.status import status_code
from tests.property.strategies import (
    AWS_PARAMS,
    AZURE_PARAMS,
    MODES,
    PLANTED_SECRET,
    PLANTED_TOKEN,
    VAULT_PARAMS,
    wire_request,
)

VOLUME = "/var/lib/kubelet/pods/uid/volumes/kubernetes.io~csi/secrets/mount"
SP_SECRETS = {"clientid": "sp-client", "clientsecret": PLANTED_SECRET}


def check_error(exc: ProviderError) -> None:
    assert status_code(exc) is not grpc.StatusCode.INTERNAL, exc
    assert isinstance(exc, InvalidRequest), exc
    message = str(exc)
    assert PLANTED_TOKEN not in message
    assert PLANTED_SECRET not in message


def check_inside_volume(paths: Iterable[str]) -> None:
    for path in paths:
        assert path_problem(path) is None, path
        resolved = posixpath.normpath(posixpath.join(VOLUME, path))
        assert resolved.startswith(VOLUME + "/"), path


def planned(build: Callable[[], Any]) -> Any:
    """The plan, or None after checking the error it raised."""
    try:
        plan = build()
    except ProviderError as exc:
        check_error(exc)
        event("refused")
        return None
    # Shown by --hypothesis-show-statistics: a share of accepted plans shows
    # the path property is really exercised.
    event("accepted")
    return plan


@given(wire_request())
def test_request_parser_answers_bad_input_with_its_own_errors(wire: dict[str, str]) -> None:
    request = planned(
        lambda: parse_mount_request(
            attributes=wire["attributes"],
            secrets=wire["secrets"],
            permission=wire["permission"],
        )
    )
    if request is not None:
        # Parsed: the token lives only in `tokens`, never in what gets printed.
        assert PLANTED_TOKEN not in repr(request)
        assert PLANTED_TOKEN not in str(dict(request.attributes))
        assert 0 <= request.default_mode <= 0o777


@given(st.text(max_size=30))
def test_a_path_the_rules_accept_stays_inside_the_volume(path: str) -> None:
    if path_problem(path) is None:
        check_inside_volume([path])


@given(
    st.lists(
        st.sampled_from(["a", "b", "..", ".", "", "..data", "x" * 10, "/"]), max_size=5
    ).map("/".join)
)
def test_path_rules_on_traversal_shapes(path: str) -> None:
    if path_problem(path) is None:
        check_inside_volume([path])


@given(AWS_PARAMS, MODES, st.sampled_from(["", "us-east-1"]))
def test_aws_plan(params: dict[str, str], mode: int, region: str) -> None:
    plan: AwsPlan | None = planned(
        lambda: aws_plan(params, default_mode=mode, settings=AwsSettings(region=region))
    )
    if plan is not None:
        assert plan.objects
        check_inside_volume(
            p for o in plan.objects for p in (o.file_name, *(j.file_name for j in o.jmes))
        )


@given(VAULT_PARAMS, MODES)
def test_vault_plan(params: dict[str, str], mode: int) -> None:
    plan: VaultPlan | None = planned(
        lambda: vault_plan(params, default_mode=mode, settings=VaultSettings())
    )
    if plan is not None:
        assert plan.objects
        check_inside_volume(o.object_name for o in plan.objects)


@given(AZURE_PARAMS, MODES)
def test_azure_plan(params: dict[str, str], mode: int) -> None:
    plan: AzurePlan | None = planned(
        lambda: azure_plan(params, default_mode=mode, settings=AzureSettings(), secrets=SP_SECRETS)
    )
    if plan is not None:
        assert plan.objects
        check_inside_volume(
            f"{o.file_name}/{i}" if o.history > 1 else o.file_name
            for o in plan.objects
            for i in range(max(o.history, 1))
        )
