"""provider.modes, provider.encodings, provider.redaction, provider.selection."""

from __future__ import annotations

import pytest

from provider.backends import all_packages
from provider.encodings import decode, normalize_encoding
from provider.errors import InvalidParameters
from provider.modes import parse_integer_mode, parse_octal_mode
from provider.redaction import REDACTED, redact
from provider.selection import choose_backend


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("0644", 0o644),
        ("644", 0o644),
        ("0600", 0o600),
        ("0000", 0),
        ("0777", 0o777),
        (" 0400 ", 0o400),
        ("0o640", 0o640),
    ],
)
def test_octal_mode(text: str, mode: int) -> None:
    assert parse_octal_mode(text) == mode


@pytest.mark.parametrize("value", ["0800", "01777", "64", "rw-r--r--", "", "0x1a4", 420, None])
def test_octal_mode_invalid(value: object) -> None:
    with pytest.raises(ValueError, match="octal"):
        parse_octal_mode(value)


@pytest.mark.parametrize(("value", "mode"), [(0o644, 0o644), (0, 0), (511, 0o777), ("0600", 0o600)])
def test_integer_mode(value: object, mode: int) -> None:
    assert parse_integer_mode(value) == mode


@pytest.mark.parametrize("value", [512, -1, True, 4.2, None])
def test_integer_mode_invalid(value: object) -> None:
    with pytest.raises(ValueError):
        parse_integer_mode(value)


@pytest.mark.parametrize(
    ("name", "canonical"),
    [("", "utf-8"), ("UTF-8", "utf-8"), ("utf8", "utf-8"), ("Base64", "base64"), (" hex ", "hex")],
)
def test_normalize_encoding(name: str, canonical: str) -> None:
    assert normalize_encoding(name) == canonical


def test_unknown_encoding() -> None:
    with pytest.raises(ValueError, match="not one of"):
        normalize_encoding("rot13")


@pytest.mark.parametrize(
    ("value", "encoding", "raw"),
    [
        ("h\u00e9", "utf-8", "h\u00e9".encode()),
        ("/wD+", "base64", b"\xff\x00\xfe"),
        (b"ff00fe\n", "hex", b"\xff\x00\xfe"),
        (b"\xff", "utf-8", b"\xff"),
    ],
)
def test_decode(value: str | bytes, encoding: str, raw: bytes) -> None:
    assert decode(value, encoding) == raw


@pytest.mark.parametrize(
    ("value", "encoding"), [("not base64!", "base64"), ("abc", "hex"), ("zz", "hex")]
)
def test_decode_invalid_never_quotes_value(value: str, encoding: str) -> None:
    with pytest.raises(ValueError) as info:
        decode(value, encoding)
    assert value not in str(info.value) and encoding in str(info.value)


def test_redact() -> None:
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
    text = f"token {jwt} and secret hunter22 and hunter2 and a"
    out = redact(text, ["hunter2", "hunter22", "a"])
    assert jwt not in out and "hunter2" not in out
    assert out == f"token {REDACTED} and secret {REDACTED} and {REDACTED} and a"


@pytest.mark.parametrize(
    ("attributes", "served", "backend"),
    [
        pytest.param(
            {"backend": "Vault", "keyvaultName": "kv"}, "azure", "vault", id="explicit-wins"
        ),
        pytest.param({"keyvaultName": "kv"}, "aws", "aws", id="socket-name-wins-over-keys"),
        pytest.param({"keyvaultName": "kv"}, "polysecret", "azure", id="azure-key"),
        pytest.param({"roleName": "r"}, "polysecret", "vault", id="vault-roleName"),
        pytest.param({"vaultAddress": "http://v"}, "polysecret", "vault", id="vault-address"),
        pytest.param(
            {"objects": "- {objectName: a, objectType: SSMParameter}"},
            "polysecret",
            "aws",
            id="aws-objectType",
        ),
        pytest.param(
            {"objects": "- objectName: arn:aws:secretsmanager:r:1:secret:x"},
            "polysecret",
            "aws",
            id="aws-arn",
        ),
    ],
)
def test_choose_backend(attributes: dict[str, str], served: str, backend: str) -> None:
    assert choose_backend(attributes, served, all_packages()) == backend


@pytest.mark.parametrize(
    "attributes",
    [
        pytest.param({}, id="nothing"),
        pytest.param({"objects": "- {objectName: a}"}, id="objects-without-type"),
        pytest.param({"objects": "[unclosed"}, id="bad-yaml"),
        pytest.param({"backend": "gcp"}, id="unknown-backend"),
        pytest.param({"keyvaultName": "kv", "roleName": "r"}, id="two-dialects"),
    ],
)
def test_choose_backend_fails(attributes: dict[str, str]) -> None:
    with pytest.raises(InvalidParameters) as info:
        choose_backend(attributes, "polysecret", all_packages())
    assert "backend" in str(info.value)
