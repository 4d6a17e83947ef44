"""Per-object extras: the PEM flags per object, a PFX encrypted with another object's value
(Azure provider #185), and an object's tags and attributes as a JSON file (#1177).

Against the Key Vault stand-in; requests counted by the stand-in where a plan-time
refusal must send none.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.azure.conftest import Seeded, wi_attrs
from tests.support.running import RunningProvider, files_of, settings_for, versions_of

pytestmark = pytest.mark.azure

EXPIRES = 1_900_000_000
NOT_BEFORE = 1_700_000_000


@pytest.fixture(scope="module")
def extras(seeded: Seeded) -> Seeded:
    vault = seeded.world.vault
    vault.set_secret("pfx-pass", "Pa55-word\n")  # a trailing newline, as `--file` stores it
    vault.set_secret("empty-pass", "\n")
    vault.set_secret(
        "tagged", "v", content_type="text/plain", tags={"team": "pay", "env": "prod"},
        expires=EXPIRES, not_before=NOT_BEFORE,
    )
    return seeded


@pytest.fixture(scope="module")
def flipped(seeded: Seeded, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProvider]:
    """A provider with both Azure flags the other way round from their defaults."""
    settings = replace(
        seeded.world.settings(), separate_cert_and_key=True, construct_pem_chain=False
    )
    sockets = Path(tmp_path_factory.mktemp("azflip"))
    with RunningProvider(settings_for(sockets, {"azure": settings})) as running:
        yield running


def _certs(pem: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem)


def test_separate_files_per_object_override_the_flag(
    provider: RunningProvider, flipped: RunningProvider
) -> None:
    on = "objectName: pem-cert\nobjectType: secret\nwriteCertAndKeyInSeparateFiles: \"true\""
    files = files_of(provider.mount(wi_attrs(on)))
    assert set(files) == {"pem-cert", "pem-cert.crt", "pem-cert.key"}
    assert b"PRIVATE KEY" in files["pem-cert.key"][1] and b"PRIVATE" not in files["pem-cert.crt"][1]
    off = "objectName: pem-cert\nobjectType: secret\nwriteCertAndKeyInSeparateFiles: \"false\""
    assert set(files_of(flipped.mount(wi_attrs(off)))) == {"pem-cert"}
    plain = "objectName: pem-cert\nobjectType: secret"
    assert set(files_of(flipped.mount(wi_attrs(plain)))) == {
        "pem-cert", "pem-cert.crt", "pem-cert.key"
    }


def test_pem_chain_order_per_object_overrides_the_flag(
    provider: RunningProvider, flipped: RunningProvider, seeded: Seeded
) -> None:
    chain = seeded.chains[-1]
    by_key_ids = [chain.leaf, chain.intermediate, chain.root]
    as_stored = [chain.leaf, chain.root, chain.intermediate]  # the PFX holds root first
    off = "objectName: pfx-cert\nobjectType: secret\nconstructPEMChain: \"false\""
    assert _certs(files_of(provider.mount(wi_attrs(off)))["pfx-cert"][1]) == as_stored
    on = "objectName: pfx-cert\nobjectType: secret\nconstructPEMChain: \"true\""
    assert _certs(files_of(flipped.mount(wi_attrs(on)))["pfx-cert"][1]) == by_key_ids
    plain = "objectName: pfx-cert\nobjectType: secret"
    assert _certs(files_of(flipped.mount(wi_attrs(plain)))["pfx-cert"][1]) == as_stored


@pytest.mark.parametrize("encoding", ["base64", ""])
def test_pfx_encrypted_with_another_objects_value(
    provider: RunningProvider, extras: Seeded, encoding: str
) -> None:
    item = (
        "objectName: pfx-cert\nobjectType: secret\nobjectFormat: pfx\nobjectAlias: app.pfx\n"
        "pfxPasswordFrom: pass\n" + (f"objectEncoding: {encoding}\n" if encoding else "")
    )
    answer = provider.mount(wi_attrs(item, "objectName: pfx-pass\nobjectType: secret\n"
                                           "objectAlias: pass"))
    files = files_of(answer)
    assert files["pass"][1] == b"Pa55-word\n"
    data = files["app.pfx"][1]
    raw = data if encoding == "base64" else base64.b64decode(data)
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(raw, None)
    key, cert, extra = pkcs12.load_key_and_certificates(raw, b"Pa55-word")
    chain = extras.chains[-1]
    assert cert == chain.leaf and set(extra) == {chain.root, chain.intermediate}
    assert key is not None and key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == chain.key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # Versions are the objects' own: the password object adds its own.
    assert set(versions_of(answer)) == {"secret/pfx-cert", "secret/pfx-pass"}


def test_an_empty_password_fails_the_mount(provider: RunningProvider, extras: Seeded) -> None:
    error = provider.mount_error(wi_attrs(
        "objectName: pfx-cert\nobjectType: secret\nobjectFormat: pfx\npfxPasswordFrom: empty-pass",
        "objectName: empty-pass\nobjectType: secret",
    ))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "pfxPasswordFrom" in error.details() and "'empty-pass' is empty" in error.details()


@pytest.mark.parametrize(
    ("items", "words"),
    [
        (("objectName: pfx-cert\nobjectType: secret\nobjectFormat: pfx\npfxPasswordFrom: nope",),
         "no other object of the class has objectAlias or objectName 'nope'"),
        (("objectName: pfx-cert\nobjectType: secret\npfxPasswordFrom: p",
          "objectName: pfx-pass\nobjectType: secret\nobjectAlias: p"),
         "'pfxPasswordFrom' needs objectFormat: pfx"),
        (("objectName: pfx-cert\nobjectType: secret\nobjectFormat: pfx\npfxPasswordFrom: k",
          "objectName: rsa-key\nobjectType: key\nobjectAlias: k"),
         "must be a plain secret"),
        (("objectName: rsa-key\nobjectType: key\nconstructPEMChain: \"false\"",),
         "'constructPEMChain' is only for objectType secret"),
        (("objectName: plain\nobjectType: secret\nwriteCertAndKeyInSeparateFiles: maybe",),
         "'writeCertAndKeyInSeparateFiles': 'maybe' is not a boolean"),
        (("objectName: plain\nobjectType: secret\nmetadataFile: ../meta",),
         "'metadataFile'"),
        (("objectName: plain\nobjectType: secret\nmetadataFile: b64", "objectName: b64\n"
          "objectType: secret"), "file name 'b64' is already used"),
    ],
)
def test_bad_extras_are_refused_before_any_request(
    provider: RunningProvider, extras: Seeded, items: tuple[str, ...], words: str
) -> None:
    since = len(extras.world.vault.requests)
    error = provider.mount_error(wi_attrs(*items))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in error.details(), error.details()
    assert extras.world.vault.requests[since:] == []


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def test_metadata_file_of_a_secret(provider: RunningProvider, extras: Seeded) -> None:
    answer = provider.mount(wi_attrs(
        "objectName: tagged\nobjectType: secret\nmetadataFile: meta/tagged.json\n"
        "filePermission: \"0400\""
    ))
    files = files_of(answer)
    mode, data = files["meta/tagged.json"]
    doc = json.loads(data)
    assert mode == 0o400 and files["tagged"] == (0o400, b"v")
    assert doc["tags"] == {"team": "pay", "env": "prod"}
    assert doc["enabled"] is True and doc["contentType"] == "text/plain"
    assert doc["version"] == versions_of(answer)["secret/tagged"]
    assert doc["expires"] == _iso(EXPIRES) and doc["notBefore"] == _iso(NOT_BEFORE)
    assert doc["created"] and doc["created"] == doc["updated"]
    assert set(doc) == {
        "tags", "enabled", "created", "updated", "expires", "notBefore", "contentType", "version"
    }


def test_metadata_file_of_a_key_and_a_certificate(
    provider: RunningProvider, extras: Seeded
) -> None:
    answer = provider.mount(wi_attrs(
        "objectName: ec-key\nobjectType: key\nmetadataFile: key.json",
        "objectName: pfx-cert\nobjectType: cert\nmetadataFile: cert.json",
    ))
    files, versions = files_of(answer), versions_of(answer)
    key, cert = json.loads(files["key.json"][1]), json.loads(files["cert.json"][1])
    assert key["version"] == versions["key/ec-key"] == extras.versions["ec-key"][-1]
    assert cert["version"] == versions["cert/pfx-cert"] == extras.versions["pfx-cert"][-1]
    assert key["enabled"] is True and cert["tags"] == {} and cert["expires"] is None
