"""PEM and PFX conversions (no server): chains, keys, errors."""

from __future__ import annotations

import base64
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12

from provider.backends.azure.config import AzureObject, ObjectType, parse_plan
from provider.backends.azure.render import (
    SecretValue,
    order_chain,
    pfx_to_pem,
    render_key,
    render_secret,
)
from provider.errors import InvalidParameters, InvalidRequest
from tests.support.azure_standin import make_chain, public_jwk

pytestmark = pytest.mark.azure


def obj(**kw: object) -> AzureObject:
    base: dict[str, object] = dict(
        name="o",
        type=ObjectType.SECRET,
        file_name="o",
        version="",
        history=0,
        pfx=False,
        encoding="utf-8",
        mode=0o644,
    )
    base.update(kw)
    return AzureObject(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "order",
    [(0, 1, 2), (2, 1, 0), (1, 2, 0), (2, 0, 1)],
    ids=["ordered", "reversed", "mid-first", "root-first"],
)
def test_chain_order_leaf_to_root_whatever_the_pfx_order(order: tuple[int, int, int]) -> None:
    chain = make_chain("x.example")
    certs = [chain.leaf, chain.intermediate, chain.root]
    assert order_chain(None, [certs[i] for i in order]) == certs
    assert order_chain(chain.leaf, [certs[i] for i in order if i]) == certs


def test_pfx_without_key_or_with_password() -> None:
    chain = make_chain("y.example")
    only_certs = pkcs12.serialize_key_and_certificates(
        None, None, None, [chain.root, chain.leaf], serialization.NoEncryption()
    )
    pem = pfx_to_pem(base64.b64encode(only_certs).decode(), obj())
    assert x509.load_pem_x509_certificates(pem) == [chain.leaf, chain.root]
    locked = pkcs12.serialize_key_and_certificates(
        b"n", chain.key, chain.leaf, None, serialization.BestAvailableEncryption(b"pw")
    )
    with pytest.raises(InvalidRequest, match="PKCS#12"):
        pfx_to_pem(base64.b64encode(locked).decode(), obj())


def test_cert_backed_secret_with_unknown_content_type() -> None:
    with pytest.raises(InvalidRequest, match="content type"):
        render_secret(obj(), SecretValue("x", "text/plain", True, "v"))
    # a plain secret's content type does not matter
    assert render_secret(obj(), SecretValue("x", "text/plain", False, "v")) == b"x"


def test_bad_encoding_names_object_not_value() -> None:
    with pytest.raises(InvalidRequest) as info:
        render_secret(obj(encoding="base64"), SecretValue("%%%secret%%%", "", False, "v"))
    assert "'o'" in str(info.value) and "secret%%%" not in str(info.value)


@pytest.mark.parametrize(
    "curve",
    [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1(), ec.SECP256K1()],
    ids=["P-256", "P-384", "P-521", "P-256K"],
)
def test_ec_keys(curve: ec.EllipticCurve) -> None:
    public = ec.generate_private_key(curve).public_key()
    pem = render_key(obj(type=ObjectType.KEY), public_jwk(public))
    assert serialization.load_pem_public_key(pem) == public


def test_incomplete_key() -> None:
    with pytest.raises(InvalidRequest, match="incomplete RSA"):
        render_key(obj(type=ObjectType.KEY), {"kty": "RSA", "n": "AQAB"})


def test_version_like_numbers_stay_text() -> None:
    params = {
        "keyvaultName": "kv1",
        "tenantID": "t",
        "clientID": "c",
        "objects": "array:\n  - |\n    objectName: s\n    objectType: secret\n"
        "    objectVersion: 1e100\n    filePermission: 0440\n",
    }
    plan = parse_plan(params, {}, 0o644)
    assert plan.objects[0].version == "1e100" and plan.objects[0].mode == 0o440


def test_problems_reported_together() -> None:
    with pytest.raises(InvalidParameters) as info:
        parse_plan({"objects": "array:\n  - |\n    objectName: s\n"}, {}, 0o644)
    text = str(info.value)
    assert "keyvaultName" in text and "objectType" in text and "clientid" in text


def test_importing_the_backend_package_does_not_import_the_sdk() -> None:
    code = (
        "import sys, provider.backends.azure as a; a.load_settings; "
        "print(any(m.startswith('azure.') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
