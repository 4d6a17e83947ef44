"""Every object row of the AWS dialect, mounted for real (moto, Unix socket, gRPC)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from tests.aws.conftest import attrs
from tests.support.running import RunningProvider, files_of, versions_of

pytestmark = pytest.mark.aws

DB = '{"user":"u1","pw":"p1","port":5432,"tags":["a","b"],"nested":{"k":"v"}}'


def test_secret_by_name_default_translation(provider: RunningProvider, sm: Any) -> None:
    v = sm.create_secret(Name="team/db/creds", SecretString=DB)["VersionId"]
    resp = provider.mount(attrs("- objectName: team/db/creds\n  objectType: secretsmanager\n"))
    assert files_of(resp) == {"team_db_creds": (0o644, DB.encode())}
    assert versions_of(resp) == {"team_db_creds": v}


@pytest.mark.parametrize(
    ("translation", "name", "expected"),
    [
        pytest.param(None, "/app/db/pw", "_app_db_pw", id="default-underscore"),
        pytest.param("_", "/app/db/pw", "_app_db_pw", id="explicit-underscore"),
        pytest.param("-", "/app/db/pw", "-app-db-pw", id="custom-char"),
        pytest.param("False", "/app/db/pw", "app/db/pw", id="off-subdirs-leading-slash-dropped"),
        pytest.param("false", "app/pw", "app/pw", id="off-lowercase"),
    ],
)
def test_path_translation(
    provider: RunningProvider, ssm: Any, translation: str | None, name: str, expected: str
) -> None:
    ssm.put_parameter(Name=name, Value="hunter2", Type="SecureString")
    params = {} if translation is None else {"pathTranslation": translation}
    resp = provider.mount(attrs(f"- objectName: {name}\n  objectType: ssmparameter\n", **params))
    assert files_of(resp) == {expected: (0o644, b"hunter2")}
    assert versions_of(resp) == {expected: "1"}


def test_object_alias_and_keys_case_insensitive(provider: RunningProvider, sm: Any) -> None:
    sm.create_secret(Name="db", SecretString="s3cret")
    resp = provider.mount(
        attrs("- ObjectName: db\n  OBJECTTYPE: SecretsManager\n  objectalias: creds.txt\n")
    )
    assert files_of(resp) == {"creds.txt": (0o644, b"s3cret")}


def test_secret_by_full_arn_implies_type(provider: RunningProvider, sm: Any) -> None:
    arn = sm.create_secret(Name="db", SecretString="by-arn")["ARN"]
    resp = provider.mount(attrs(f"- objectName: {arn}\n  objectAlias: db\n"))
    assert files_of(resp) == {"db": (0o644, b"by-arn")}
    # Without an alias the (translated) ARN is the file name, as in the AWS provider.
    resp = provider.mount(attrs(f"- objectName: {arn}\n"))
    assert list(files_of(resp)) == [arn.replace("/", "_")]


def test_secret_versions(provider: RunningProvider, sm: Any) -> None:
    first = sm.create_secret(Name="db", SecretString="one")["VersionId"]
    second = sm.put_secret_value(SecretId="db", SecretString="two")["VersionId"]
    objects = f"""
- {{objectName: db, objectType: secretsmanager, objectAlias: current}}
- {{objectName: db, objectType: secretsmanager, objectAlias: by-id, objectVersion: "{first}"}}
- {{objectName: db, objectType: secretsmanager, objectAlias: previous,
    objectVersionLabel: AWSPREVIOUS}}
- {{objectName: db, objectType: secretsmanager, objectAlias: both, objectVersion: "{second}",
    objectVersionLabel: AWSCURRENT}}
"""
    resp = provider.mount(attrs(objects))
    assert {p: c for p, (_, c) in files_of(resp).items()} == {
        "current": b"two",
        "by-id": b"one",
        "previous": b"one",
        "both": b"two",
    }
    assert versions_of(resp) == {
        "current": second,
        "by-id": first,
        "previous": first,
        "both": second,
    }


def test_secret_binary_written_raw(provider: RunningProvider, sm: Any) -> None:
    raw = bytes([0xFF, 0x00, 0xFE, 0x80, 0x0A]) + b"\xc3\x28"  # not UTF-8
    sm.create_secret(Name="keystore", SecretBinary=raw)
    resp = provider.mount(attrs("- {objectName: keystore, objectType: secretsmanager}"))
    assert files_of(resp) == {"keystore": (0o644, raw)}


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        pytest.param("String", "plain", id="String"),
        pytest.param("StringList", "a,b,c", id="StringList"),
        pytest.param("SecureString", "dec\u00e9ypted", id="SecureString-decrypted"),
    ],
)
def test_ssm_types(provider: RunningProvider, ssm: Any, kind: str, value: str) -> None:
    ssm.put_parameter(Name="param", Value=value, Type=kind)
    resp = provider.mount(attrs("- {objectName: param, objectType: ssmparameter}"))
    assert files_of(resp) == {"param": (0o644, value.encode())}


def test_ssm_versions_and_labels(provider: RunningProvider, ssm: Any) -> None:
    ssm.put_parameter(Name="/p", Value="v1", Type="String")
    ssm.put_parameter(Name="/p", Value="v2", Type="String", Overwrite=True)
    ssm.put_parameter(Name="/p", Value="v3", Type="String", Overwrite=True)
    ssm.label_parameter_version(Name="/p", ParameterVersion=1, Labels=["stable"])
    objects = """
- {objectName: /p, objectType: ssmparameter, objectAlias: latest}
- {objectName: /p, objectType: ssmparameter, objectAlias: v2, objectVersion: "2"}
- {objectName: /p, objectType: ssmparameter, objectAlias: stable, objectVersionLabel: stable}
"""
    resp = provider.mount(attrs(objects))
    assert files_of(resp) == {
        "latest": (0o644, b"v3"),
        "v2": (0o644, b"v2"),
        "stable": (0o644, b"v1"),
    }
    assert versions_of(resp) == {"latest": "3", "v2": "2", "stable": "1"}


def test_ssm_batches_of_ten(
    provider: RunningProvider, ssm: Any, make_provider: Any, region_proxy: Any
) -> None:
    from provider.backends.aws import AwsSettings

    for i in range(25):
        ssm.put_parameter(Name=f"/batch/p{i:02d}", Value=f"value-{i}", Type="SecureString")
    counted = make_provider(AwsSettings(region="us-east-1", endpoint_url=region_proxy.url))
    objects = "".join(
        f"- {{objectName: /batch/p{i:02d}, objectType: ssmparameter}}\n" for i in range(25)
    )
    resp = counted.mount(attrs(objects))
    assert files_of(resp) == {f"_batch_p{i:02d}": (0o644, f"value-{i}".encode()) for i in range(25)}
    assert versions_of(resp) == {f"_batch_p{i:02d}": "1" for i in range(25)}
    assert region_proxy.count("GetParameters") == 3  # 10 + 10 + 5


def test_mixed_secrets_and_parameters(provider: RunningProvider, sm: Any, ssm: Any) -> None:
    sm.create_secret(Name="s", SecretString="from-sm")
    ssm.put_parameter(Name="p", Value="from-ssm", Type="String")
    resp = provider.mount(
        attrs(
            "- {objectName: s, objectType: secretsmanager}\n"
            "- {objectName: p, objectType: ssmparameter}\n"
        )
    )
    assert files_of(resp) == {"s": (0o644, b"from-sm"), "p": (0o644, b"from-ssm")}


@pytest.mark.parametrize(
    ("permission", "mode"),
    [
        pytest.param("0600", 0o600, id="0600"),
        pytest.param("0400", 0o400, id="0400"),
        pytest.param("640", 0o640, id="three-digits"),
        pytest.param("0777", 0o777, id="0777"),
    ],
)
def test_file_permission(provider: RunningProvider, sm: Any, permission: str, mode: int) -> None:
    sm.create_secret(Name="s", SecretString="x")
    resp = provider.mount(
        attrs(f'- {{objectName: s, objectType: secretsmanager, filePermission: "{permission}"}}')
    )
    assert files_of(resp) == {"s": (mode, b"x")}


def test_default_mode_from_request_permission(provider: RunningProvider, sm: Any) -> None:
    sm.create_secret(Name="s", SecretString="x")
    sm.create_secret(Name="t", SecretString="y")
    objects = (
        "- {objectName: s, objectType: secretsmanager}\n"
        '- {objectName: t, objectType: secretsmanager, filePermission: "0600"}'
    )
    resp = provider.mount(attrs(objects), permission="288")  # 0o440
    assert files_of(resp) == {"s": (0o440, b"x"), "t": (0o600, b"y")}


def test_jmes_path(provider: RunningProvider, sm: Any) -> None:
    version = sm.create_secret(Name="db", SecretString=DB)["VersionId"]
    objects = """
- objectName: db
  objectType: secretsmanager
  filePermission: "0640"
  jmesPath:
    - {path: user, objectAlias: username}
    - {path: pw, objectAlias: password, filePermission: "0400"}
    - {path: port, objectAlias: port}
    - {path: tags, objectAlias: tags}
    - {path: nested, objectAlias: nested}
    - {path: nested.k, objectAlias: nested-k}
"""
    resp = provider.mount(attrs(objects))
    assert files_of(resp) == {
        "db": (0o640, DB.encode()),
        "username": (0o640, b"u1"),  # inherits the object's filePermission
        "password": (0o400, b"p1"),
        "port": (0o640, b"5432"),  # non-string results are written as JSON
        "tags": (0o640, b'["a", "b"]'),
        "nested": (0o640, b'{"k": "v"}'),
        "nested-k": (0o640, b"v"),
    }
    assert set(versions_of(resp).values()) == {version}
    assert set(versions_of(resp)) == set(files_of(resp))


def test_jmes_path_on_ssm_parameter(provider: RunningProvider, ssm: Any) -> None:
    ssm.put_parameter(Name="/cfg", Value='{"a": {"b": "c"}}', Type="String")
    resp = provider.mount(
        attrs(
            "- objectName: /cfg\n  objectType: ssmparameter\n"
            "  jmesPath: [{path: a.b, objectAlias: ab}]"
        )
    )
    assert files_of(resp)["ab"] == (0o644, b"c")
    assert versions_of(resp) == {"_cfg": "1", "ab": "1"}


def test_ssm_parameter_by_arn_is_implied_type() -> None:
    """moto's GetParameters rejects ARNs (real SSM accepts them): checked at plan level."""
    from provider.backends.aws import AwsSettings
    from provider.backends.aws.config import parse_plan
    from provider.backends.aws.objects import ObjectType

    arn = "arn:aws:ssm:us-east-1:111122223333:parameter/app/conf"
    plan = parse_plan(
        {"objects": f"- objectName: {arn}\n  objectAlias: conf"},
        default_mode=0o644,
        settings=AwsSettings(region="us-east-1"),
    )
    assert plan.objects[0].object_type is ObjectType.SSM_PARAMETER
    assert plan.objects[0].file_name == "conf"


@pytest.mark.parametrize(
    ("stored", "encoding", "expected"),
    [
        pytest.param("AAEC/w==", "base64", b"\x00\x01\x02\xff", id="base64"),
        pytest.param("0001ff", "HEX", b"\x00\x01\xff", id="hex-any-case"),
        pytest.param("plain", "utf8", b"plain", id="utf8-as-stored"),
    ],
)
def test_object_encoding_decodes_the_value_into_the_file(
    provider: RunningProvider, sm: Any, stored: str, encoding: str, expected: bytes
) -> None:
    sm.create_secret(Name="bin", SecretString=stored)
    resp = provider.mount(
        attrs(f"- objectName: bin\n  objectType: secretsmanager\n  objectEncoding: {encoding}\n")
    )
    assert files_of(resp) == {"bin": (0o644, expected)}


def test_object_encoding_errors_name_the_encoding_never_the_value(
    provider: RunningProvider, sm: Any
) -> None:
    sm.create_secret(Name="bin", SecretString="not%base64!")
    err = provider.mount_error(
        attrs("- objectName: bin\n  objectType: secretsmanager\n  objectEncoding: base64\n")
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "objectEncoding" in err.details() and "base64" in err.details()
    assert "not%base64!" not in err.details()
    err = provider.mount_error(
        attrs("- objectName: bin\n  objectType: secretsmanager\n  objectEncoding: rot13\n")
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'rot13' is not one of utf-8, base64, hex" in err.details()
