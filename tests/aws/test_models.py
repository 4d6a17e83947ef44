"""The trimmed service models serialize, parse and name errors as botocore's full ones.

provider.backends.aws.models keeps, of the Secrets Manager, SSM and STS models,
only the operations the provider calls and the shapes they reach, without
documentation. Each kept operation must build the same request from the same
parameters, know the same modeled errors, and a model without our operations
(a user's own) must stay whole.
"""

from __future__ import annotations

import json
from typing import Any

import boto3.session
import botocore.config
import botocore.loaders
import botocore.model
import botocore.serialize
import botocore.session
import pytest

from provider.backends.aws.endpoints import lean_session
from provider.backends.aws.models import OPERATIONS, TrimmedLoader, read_model

# Parameters touching every member of each operation's input (and nested shapes).
PARAMS: dict[str, dict[str, Any]] = {
    "GetSecretValue": {"SecretId": "db", "VersionId": "v" * 32, "VersionStage": "AWSCURRENT"},
    "ListSecrets": {
        "MaxResults": 100, "NextToken": "t", "IncludePlannedDeletion": False,
        "Filters": [{"Key": "name", "Values": ["app/"]}], "SortOrder": "asc",
    },
    "GetParameters": {"Names": ["/a", "/b:1"], "WithDecryption": True},
    "GetParametersByPath": {
        "Path": "/app", "Recursive": True, "WithDecryption": True, "MaxResults": 10,
        "NextToken": "t", "ParameterFilters": [{"Key": "Type", "Option": "Equals",
                                                "Values": ["SecureString"]}],
    },
    "AssumeRoleWithWebIdentity": {
        "RoleArn": "arn:aws:iam::111122223333:role/r", "RoleSessionName": "sess",
        "WebIdentityToken": "jwt-token", "DurationSeconds": 900,
    },
    "AssumeRole": {
        "RoleArn": "arn:aws:iam::111122223333:role/r", "RoleSessionName": "sess",
        "DurationSeconds": 900, "ExternalId": "ext-id",
        "Tags": [{"Key": "k", "Value": "v"}], "TransitiveTagKeys": ["k"],
    },
}


def _models(service: str) -> tuple[botocore.model.ServiceModel, botocore.model.ServiceModel]:
    lean = TrimmedLoader().load_service_model(service, "service-2")
    full = botocore.loaders.Loader().load_service_model(service, "service-2")
    return botocore.model.ServiceModel(lean, service), botocore.model.ServiceModel(full, service)


def _shape(shape: botocore.model.Shape | None, seen: frozenset[str] = frozenset()) -> Any:
    """A shape's type, serialization, metadata and members, recursively (no documentation)."""
    if shape is None:
        return None
    if shape.name in seen:
        return shape.name
    seen |= {shape.name}
    found: dict[str, Any] = {
        "type": shape.type_name, "serialization": shape.serialization,
        "metadata": shape.metadata, "required": getattr(shape, "required_members", None),
    }
    if isinstance(shape, botocore.model.StructureShape):
        found["members"] = {k: _shape(v, seen) for k, v in shape.members.items()}
    elif isinstance(shape, botocore.model.ListShape):
        found["member"] = _shape(shape.member, seen)
    elif isinstance(shape, botocore.model.MapShape):
        found["kv"] = (_shape(shape.key, seen), _shape(shape.value, seen))
    return found


@pytest.mark.parametrize(
    ("service", "operation"),
    [(s, o) for s, ops in sorted(OPERATIONS.items()) for o in sorted(ops)],
)
def test_kept_operations_are_botocore_s(service: str, operation: str) -> None:
    lean, full = _models(service)
    assert set(lean.operation_names) == OPERATIONS[service]
    assert len(full.operation_names) > len(OPERATIONS[service])
    mine, theirs = lean.operation_model(operation), full.operation_model(operation)
    assert _shape(mine.input_shape) == _shape(theirs.input_shape)
    assert _shape(mine.output_shape) == _shape(theirs.output_shape)
    assert [e.name for e in mine.error_shapes] == [e.name for e in theirs.error_shapes]
    for error in theirs.error_shapes:
        code = error.error_code
        assert _shape(lean.shape_for_error_code(code)) == _shape(full.shape_for_error_code(code))
    assert mine.http == theirs.http
    assert lean.metadata == full.metadata
    requests = [
        botocore.serialize.create_serializer(m.metadata["protocol"]).serialize_to_request(
            PARAMS[operation], m.operation_model(operation)
        )
        for m in (lean, full)
    ]
    assert requests[0] == requests[1]
    assert requests[0]["body"]  # the parameters really went in


def test_no_documentation_is_kept() -> None:
    lean, _ = _models("ssm")
    assert "documentation" not in repr(lean._service_description["shapes"])


def test_a_model_without_our_operations_stays_whole() -> None:
    model = {
        "operations": {"GetParameters": {"input": {"shape": "In"}}, "Other": {}},
        "shapes": {"In": {"type": "structure", "members": {}}, "Unused": {"type": "string"}},
    }
    # GetParametersByPath is missing: a user's own model
    assert read_model("ssm", json.dumps(model)) == model


def test_shapes_reached_through_lists_maps_and_errors_are_kept() -> None:
    ops = {"GetParameters": {"input": {"shape": "In"}, "errors": [{"shape": "Bad"}],
                             "documentation": "d"},
           "GetParametersByPath": {"output": {"shape": "Out"}}, "Other": {"input": {"shape": "X"}}}
    shapes = {
        "In": {"type": "structure", "members": {"L": {"shape": "L"}}, "documentation": "d"},
        "L": {"type": "list", "member": {"shape": "M"}},
        "M": {"type": "map", "key": {"shape": "S"}, "value": {"shape": "In"}},
        "S": {"type": "string"}, "Out": {"type": "string"},
        "Bad": {"type": "structure", "members": {}, "exception": True},
        "X": {"type": "structure", "members": {"s": {"shape": "S"}}},
    }
    text = json.dumps({"version": "2.0", "documentation": "d", "operations": ops,
                       "shapes": shapes})
    model = read_model("ssm", text)
    assert model == {
        "version": "2.0",
        "operations": {"GetParameters": {"input": {"shape": "In"}, "errors": [{"shape": "Bad"}]},
                       "GetParametersByPath": {"output": {"shape": "Out"}}},
        "shapes": {
            "In": {"type": "structure", "members": {"L": {"shape": "L"}}},
            **{k: shapes[k] for k in ("L", "M", "S", "Out", "Bad")},
        },
    }


def test_clients_send_boto3_s_user_agent() -> None:
    config = botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"})
    agents = [
        session.create_client(
            "ssm", region_name="us-east-1", config=config,
            aws_access_key_id="x", aws_secret_access_key="x",
        ).meta.config.user_agent
        for session in (lean_session(), boto3.session.Session()._session)
    ]
    assert agents[0] == agents[1]
    assert agents[0].startswith(f"Boto3/{boto3.__version__} ")


def _sent_user_agents(client: Any, calls: int) -> list[str]:
    """The User-Agent headers ``client`` puts on ``calls`` GetParameters (never sent)."""
    seen: list[str] = []

    def capture(request: Any, **_: Any) -> Any:
        seen.append(request.headers["User-Agent"].decode())
        # An answer of our own: nothing leaves the process.
        import botocore.awsrequest

        return botocore.awsrequest.AWSResponse(
            request.url, 200, {}, _Raw(b'{"Parameters": [], "InvalidParameters": []}')
        )

    client.meta.events.register("before-send", capture)
    for _ in range(calls):
        client.get_parameters(Names=["/a"])
    return seen


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


def test_a_kept_user_agent_is_what_botocore_builds_per_request() -> None:
    from provider.backends.aws.endpoints import _KeptUserAgent, keep_user_agent

    config = botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"})
    clients = [
        lean_session().create_client(
            "ssm", region_name="us-east-1", config=config,
            aws_access_key_id="x", aws_secret_access_key="x",
        )
        for _ in range(2)
    ]
    keep_user_agent(clients[1])
    kept_creator = clients[1]._user_agent_creator
    assert isinstance(kept_creator, _KeptUserAgent)
    _sent_user_agents(clients[1], 1)  # the strings are built once
    built = 0
    inner_to_string = kept_creator._inner.to_string

    def counting() -> str:
        nonlocal built
        built += 1
        return str(inner_to_string())

    kept_creator._inner.to_string = counting
    plain, kept = (_sent_user_agents(c, 3) for c in clients)
    # Neither the header nor botocore's 'request-created' rebuild built it again.
    assert built == 0
    assert len(set(plain)) == 1 and plain[0].startswith("Boto3/")
    assert " m/" in plain[0]  # the per-request feature marks are part of it
    # The same marks, whatever order botocore's set put them in.
    def marks(agent: str) -> tuple[str, set[str]]:
        rest = [p for p in agent.split() if not p.startswith("m/")]
        found = {m for p in agent.split() if p.startswith("m/") for m in p[2:].split(",")}
        return " ".join(rest), found

    assert [marks(a) for a in kept] == [marks(plain[0])] * 3
