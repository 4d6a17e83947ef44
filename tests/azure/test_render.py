"""PEM and PFX conversions (no server): chains, keys, errors."""

from __future__ import annotations

import base64
import subprocess
import sys
from dataclasses import replace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12

from provider.backends.azure import AzureSettings
from provider.backends.azure.config import parse_plan
from provider.backends.azure.objects import AzureObject, ObjectType
from provider.backends.azure.pki import key_id_chain, pfx_to_pem, render_key
from provider.backends.azure.render import SecretValue, render_secret, split_cert_and_key
from provider.errors import InvalidParameters, InvalidRequest
from tests.azure.conftest import Seeded, wi_attrs
from tests.support.azure_standin import Chain, make_chain, public_jwk
from tests.support.running import RunningProvider, files_of, settings_for

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


def _pfx(chain: Chain, cas: list[x509.Certificate]) -> str:
    data = pkcs12.serialize_key_and_certificates(
        b"n", chain.key, chain.leaf, cas, serialization.NoEncryption()
    )
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    "order",
    [(0, 1, 2), (2, 1, 0), (1, 2, 0), (2, 0, 1)],
    ids=["ordered", "reversed", "mid-first", "root-first"],
)
def test_key_identifiers_order_a_chain_whatever_the_pfx_order(order: tuple[int, int, int]) -> None:
    chain = make_chain("x.example")
    certs = [chain.leaf, chain.intermediate, chain.root]
    assert key_id_chain([certs[i] for i in order]) == certs
    pem = pfx_to_pem(_pfx(chain, [certs[i] for i in order if i]), obj())
    assert x509.load_pem_x509_certificates(pem) == certs


def test_without_key_identifiers_the_pkcs12_order_is_kept() -> None:
    """The Azure provider cannot link them, and writes them as the PFX holds them."""
    chain = make_chain("z.example", key_ids=False)
    held = [chain.leaf, chain.root, chain.intermediate]
    assert key_id_chain(held) is None
    pem = pfx_to_pem(_pfx(chain, [chain.root, chain.intermediate]), obj())
    assert x509.load_pem_x509_certificates(pem) == held


def test_construct_pem_chain_off_keeps_the_pkcs12_order() -> None:
    chain = make_chain("w.example")
    value = _pfx(chain, [chain.root, chain.intermediate])
    pem = pfx_to_pem(value, obj(construct_chain=False))
    assert x509.load_pem_x509_certificates(pem) == [chain.leaf, chain.root, chain.intermediate]


def test_an_incomplete_chain_keeps_the_pkcs12_order() -> None:
    chain = make_chain("y.example")
    only_certs = pkcs12.serialize_key_and_certificates(
        None, None, None, [chain.root, chain.leaf], serialization.NoEncryption()
    )
    pem = pfx_to_pem(base64.b64encode(only_certs).decode(), obj())
    # The intermediate is missing: the leaf and root are not one chain.
    assert x509.load_pem_x509_certificates(pem) == [chain.root, chain.leaf]


def test_a_locked_pfx_is_refused() -> None:
    chain = make_chain("y.example")
    locked = pkcs12.serialize_key_and_certificates(
        b"n", chain.key, chain.leaf, None, serialization.BestAvailableEncryption(b"pw")
    )
    with pytest.raises(InvalidRequest, match="PKCS#12"):
        pfx_to_pem(base64.b64encode(locked).decode(), obj())


def test_split_cert_and_key() -> None:
    chain = make_chain("s.example")
    pem = pfx_to_pem(_pfx(chain, [chain.intermediate]), obj())
    parts = split_cert_and_key(pem)
    assert parts is not None
    certs, key = parts
    assert x509.load_pem_x509_certificates(certs) == [chain.leaf, chain.intermediate]
    assert key.startswith(b"-----BEGIN PRIVATE KEY-----") and b"CERTIFICATE" not in key
    assert split_cert_and_key(certs) is None  # no key: no extra files


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
    plan = parse_plan(params, default_mode=0o644, settings=AzureSettings(), secrets={})
    assert plan.objects[0].version == "1e100" and plan.objects[0].mode == 0o440


def test_problems_reported_together() -> None:
    with pytest.raises(InvalidParameters) as info:
        parse_plan(
            {"objects": "array:\n  - |\n    objectName: s\n"},
            default_mode=0o644, settings=AzureSettings(), secrets={},
        )
    text = str(info.value)
    assert "keyvaultName" in text and "objectType" in text and "clientid" in text


def test_importing_the_backend_package_does_not_import_the_sdk() -> None:
    code = (
        "import sys, provider.backends.azure as a; a.load_settings; "
        "print(any(m.startswith('azure.') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_separate_cert_and_key_files_through_the_socket(
    seeded: Seeded, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """--write-cert-and-key-in-separate-files: <file>.crt and <file>.key beside the bundle."""
    settings = replace(seeded.world.settings(), separate_cert_and_key=True)
    sockets = tmp_path_factory.mktemp("azsep")
    with RunningProvider(settings_for(sockets, {"azure": settings})) as provider:
        files = files_of(
            provider.mount(
                wi_attrs(
                    "objectName: pfx-cert\nobjectType: secret",
                    "objectName: pem-cert\nobjectType: secret\nobjectAlias: pem",
                    "objectName: pfx-cert\nobjectType: secret\nobjectFormat: pfx\n"
                    "objectAlias: raw.pfx",
                    "objectName: plain\nobjectType: secret",
                )
            )
        )
    chain = seeded.chains[1]
    bundle = files["pfx-cert"][1]
    assert x509.load_pem_x509_certificates(files["pfx-cert.crt"][1]) == [
        chain.leaf, chain.intermediate, chain.root
    ]
    key = serialization.load_pem_private_key(files["pfx-cert.key"][1], None)
    assert key.public_key().public_numbers() == chain.key.public_key().public_numbers()
    assert files["pfx-cert.crt"][1] in bundle and files["pfx-cert.key"][1] in bundle
    assert {"pem.crt", "pem.key"} <= set(files)
    # A PFX left as PFX and a plain secret get no extra files.
    assert not {"raw.pfx.crt", "raw.pfx.key", "plain.crt", "plain.key"} & set(files)
