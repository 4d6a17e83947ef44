"""Invalid SecretProviderClasses: INVALID_ARGUMENT, naming the object and the parameter.

Nothing is seeded in moto for most cases: every one of these problems must be
found before the first network call (style.md, "Validate everything before the
first network call"), so the answer never depends on what the store holds.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from tests.aws.conftest import attrs
from tests.support.running import RunningProvider, files_of

pytestmark = pytest.mark.aws

SM = "objectType: secretsmanager"
ARN_WEST = "arn:aws:secretsmanager:us-west-2:111122223333:secret:db-AbCdEf"
ARN_EAST = "arn:aws:secretsmanager:us-east-1:111122223333:secret:db-AbCdEf"


def _invalid(
    provider: RunningProvider, attributes: dict[str, str], *needles: str, **kw: Any
) -> str:
    err = provider.mount_error(attributes, **kw)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    message = err.details()
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


# (objects YAML, extra top-level parameters, substrings the message must hold)
INVALID_DIALECT = [
    pytest.param(
        "- {objectName: db}",
        {},
        ["object 'db'", "'objectType' is required"],
        id="objectType-required",
    ),
    pytest.param(
        "- {objectName: db, objectType: vault}",
        {},
        ["'vault'", "secretsmanager or ssmparameter"],
        id="objectType-unknown",
    ),
    pytest.param(
        f"- {{objectName: '{ARN_EAST}', objectType: ssmparameter}}",
        {},
        ["objectType", "does not match the ARN"],
        id="objectType-disagrees-with-arn",
    ),
    pytest.param(
        f"- {{objectName: '{ARN_WEST}'}}",
        {},
        ["ARN region 'us-west-2'", "'us-east-1'"],
        id="arn-region-mismatch",
    ),
    pytest.param("- {objectName: 'arn:aws'}", {}, ["not a valid ARN"], id="arn-malformed"),
    pytest.param(
        "- {objectType: secretsmanager}",
        {},
        ["objects[0]", "'objectName' is required"],
        id="objectName-required",
    ),
    pytest.param(
        f"- {{objectName: db, {SM}, bogusKey: 1}}",
        {},
        ["objects[0]", "unknown key 'bogusKey'"],
        id="unknown-object-key",
    ),
    pytest.param(
        f"- {{objectName: db, {SM}, jmesPath: [{{path: a, objectAlias: b, extra: 1}}]}}",
        {},
        ["jmesPath[0]", "unknown key 'extra'"],
        id="unknown-jmes-key",
    ),
    pytest.param(
        f"- {{objectName: db, {SM}, objectAlias: x, failoverObject: {{objectName: db, typo: 1}}}}",
        {"failoverRegion": "us-west-2"},
        ["failoverObject", "unknown key 'typo'"],
        id="unknown-failover-key",
    ),
    pytest.param(
        "- {objectName: p, objectType: ssmparameter, objectVersion: '1', objectVersionLabel: l}",
        {},
        ["object 'p'", "not both"],
        id="ssm-version-and-label",
    ),
    pytest.param(
        f"- {{objectName: db, {SM}, filePermission: '0999'}}",
        {},
        ["object 'db'", "filePermission", "'0999'"],
        id="filePermission-not-octal",
    ),
    pytest.param(
        f"- {{objectName: db, {SM}, filePermission: '01777'}}",
        {},
        ["object 'db'", "filePermission"],
        id="filePermission-too-many-digits",
    ),
    pytest.param(
        f"- {{objectName: db, {SM}, filePermission: rw}}",
        {},
        ["object 'db'", "filePermission"],
        id="filePermission-word",
    ),
    pytest.param(
        f"- {{objectName: db, {SM}, jmesPath: [{{path: a, objectAlias: b, filePermission: '9'}}]}}",
        {},
        ["jmesPath[0]", "filePermission"],
        id="jmes-filePermission",
    ),
    pytest.param(
        f"- {{objectName: db, {SM}, jmesPath: [{{objectAlias: b}}]}}",
        {},
        ["jmesPath[0]", "'path' is required"],
        id="jmes-path-missing",
    ),
    pytest.param(
        f"- {{objectName: db, {SM}, jmesPath: [{{path: a}}]}}",
        {},
        ["jmesPath[0]", "'objectAlias' is required"],
        id="jmes-alias-missing",
    ),
    pytest.param(
        f"- {{objectName: db, {SM}, jmesPath: [{{path: 'a[', objectAlias: b}}]}}",
        {},
        ["jmesPath[0]", "not a valid JMESPath"],
        id="jmes-invalid-expression",
    ),
    pytest.param(
        f"- {{objectName: db, {SM}, jmesPath: notalist}}",
        {},
        ["'jmesPath' must be a list"],
        id="jmes-not-a-list",
    ),
    pytest.param(
        f"- {{objectName: db, {SM}, failoverObject: {{objectName: db}}}}",
        {"failoverRegion": "us-west-2"},
        ["object 'db'", "'objectAlias' is required"],
        id="failoverObject-alias-required",
    ),
    pytest.param(
        f"- {{objectName: db, {SM}, objectAlias: a, objectVersion: v1, "
        "failoverObject: {objectName: db, objectVersion: v2}}",
        {"failoverRegion": "us-west-2"},
        ["failoverObject.objectVersion", "must equal"],
        id="failoverObject-version-must-match",
    ),
    pytest.param(
        f"- {{objectName: db, {SM}, objectAlias: a, failoverObject: {{objectName: db}}}}",
        {},
        ["needs the parameter 'failoverRegion'"],
        id="failoverObject-without-region",
    ),
    pytest.param(
        f"- {{objectName: db, {SM}}}",
        {"failoverRegion": "us-east-1"},
        ["'failoverRegion' must differ"],
        id="failoverRegion-must-differ",
    ),
    pytest.param(
        f"- {{objectName: db, {SM}}}",
        {"pathTranslation": "ab"},
        ["pathTranslation", "single character"],
        id="pathTranslation-invalid",
    ),
    pytest.param(
        f"- {{objectName: db, {SM}}}",
        {"usePodIdentity": "maybe"},
        ["usePodIdentity", "not a boolean"],
        id="usePodIdentity-invalid",
    ),
    pytest.param(
        f"- {{objectName: db, {SM}}}",
        {"roleArn": "arn:aws:s3:::bucket"},
        ["roleArn", "IAM role ARN"],
        id="roleArn-invalid",
    ),
    pytest.param("", {}, ["'objects' is required"], id="objects-empty"),
    pytest.param("objectName: db", {}, ["'objects' must be a YAML list"], id="objects-not-a-list"),
    pytest.param("- [unclosed", {}, ["'objects' is not valid YAML", "line"], id="objects-bad-yaml"),
    pytest.param("[]", {}, ["lists no objects"], id="objects-no-items"),
    pytest.param(
        "- just-a-string", {}, ["objects[0] must be a mapping"], id="object-not-a-mapping"
    ),
    pytest.param(
        f"- {{objectName: a/b, {SM}}}\n- {{objectName: a_b, {SM}}}",
        {},
        ["file name 'a_b'", "object 'a/b'", "object 'a_b'"],
        id="duplicate-after-translation",
    ),
    pytest.param(
        f"- {{objectName: x, {SM}, objectAlias: same}}\n"
        f"- {{objectName: y, {SM}, objectAlias: same}}",
        {},
        ["'same'", "object 'x'", "object 'y'"],
        id="duplicate-alias",
    ),
    pytest.param(
        f"- {{objectName: x, {SM}, jmesPath: [{{path: a, objectAlias: x}}]}}",
        {},
        ["file name 'x'", "object 'x'"],
        id="duplicate-jmes-alias",
    ),
]


@pytest.mark.parametrize(("objects", "params", "needles"), INVALID_DIALECT)
def test_invalid_dialect(
    provider: RunningProvider, objects: str, params: dict[str, str], needles: list[str]
) -> None:
    # backend: aws, since some of these SPCs carry no AWS dialect key at all.
    message = _invalid(provider, attrs(objects, backend="aws", **params), *needles)
    assert message.startswith("InvalidParameters: ")


def test_all_problems_listed_at_once(provider: RunningProvider) -> None:
    objects = f"""
- {{objectName: one}}
- {{objectName: two, {SM}, typo: 1}}
- {{objectName: three, {SM}, filePermission: '0888'}}
- {{objectName: four, {SM}, jmesPath: [{{path: 'x[', objectAlias: y}}]}}
"""
    message = _invalid(
        provider,
        attrs(objects, pathTranslation="xy", failoverRegion="us-east-1"),
        "object 'one'",
        "unknown key 'typo'",
        "object 'three'",
        "jmesPath[0]",
        "pathTranslation",
        "failoverRegion",
    )
    assert message.count(";") >= 5


def test_unknown_top_level_keys_are_ignored(provider: RunningProvider, sm: Any) -> None:
    sm.create_secret(Name="db", SecretString="x")
    resp = provider.mount(
        attrs(
            f"- {{objectName: db, {SM}}}",
            someOtherProvidersKey="1",
            keyvaultName="other-dialect",
            backend="aws",
        )
    )
    assert files_of(resp) == {"db": (0o644, b"x")}


# -- the driver's path rules, through the whole pipeline --------------------

LONG = "x" * 256
DEEP = "/".join(["d" * 200] * 21)  # 4220 bytes, every element allowed

PATH_RULES = [
    pytest.param("../x", "False", "'..' element", id="dotdot-element"),
    pytest.param("a/../b", "False", "'..' element", id="dotdot-inside"),
    pytest.param("../x", None, "starts with '..'", id="dotdot-translated-prefix"),
    pytest.param("..data", None, "starts with '..'", id="reserved-data"),
    pytest.param("a//b", "False", "not clean", id="double-slash"),
    pytest.param("./a", "False", "not clean", id="dot-slash"),
    pytest.param("a/./b", "False", "not clean", id="inner-dot"),
    pytest.param("a/", "False", "not clean", id="trailing-slash"),
    pytest.param(LONG, None, "longer than 255 bytes", id="element-256-bytes"),
    pytest.param("\u00e9" * 128, None, "longer than 255 bytes", id="element-256-bytes-utf8"),
    pytest.param(DEEP, "False", "longer than 4096 bytes", id="path-over-4096"),
]


@pytest.mark.parametrize(("alias", "translation", "why"), PATH_RULES)
def test_path_rules(
    provider: RunningProvider, alias: str, translation: str | None, why: str
) -> None:
    params = {} if translation is None else {"pathTranslation": translation}
    objects = f"- {{objectName: db, {SM}, objectAlias: '{alias}'}}"
    _invalid(provider, attrs(objects, **params), "object 'db'", why)


def test_path_rules_apply_to_jmes_files(provider: RunningProvider) -> None:
    objects = f"- {{objectName: db, {SM}, jmesPath: [{{path: a, objectAlias: ./x}}]}}"
    _invalid(provider, attrs(objects, pathTranslation="False"), "object 'db'", "'./x'", "not clean")


def test_file_beside_its_directory(provider: RunningProvider) -> None:
    objects = (
        f"- {{objectName: one, {SM}, objectAlias: a}}\n"
        f"- {{objectName: two, {SM}, objectAlias: a/b}}"
    )
    _invalid(
        provider, attrs(objects, pathTranslation="False"), "object 'one'", "object 'two'", "'a/b'"
    )


@pytest.mark.parametrize(
    ("alias", "translation", "expected"),
    [
        pytest.param("/abs", "False", "abs", id="leading-slash-dropped"),
        pytest.param("//abs/x", "False", "abs/x", id="leading-slashes-dropped"),
        pytest.param("a//b", None, "a__b", id="double-slash-translated"),
        pytest.param("./a", None, "._a", id="dot-slash-translated"),
        pytest.param("y" * 255, None, "y" * 255, id="element-255-bytes"),
        pytest.param("a/b/c", "False", "a/b/c", id="subdirectories"),
    ],
)
def test_path_edge_cases_that_are_fine(
    provider: RunningProvider, sm: Any, alias: str, translation: str | None, expected: str
) -> None:
    sm.create_secret(Name="db", SecretString="x")
    params = {} if translation is None else {"pathTranslation": translation}
    resp = provider.mount(attrs(f"- {{objectName: db, {SM}, objectAlias: '{alias}'}}", **params))
    assert files_of(resp) == {expected: (0o644, b"x")}
