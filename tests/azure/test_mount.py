"""Mounts through the real Unix socket against the HTTPS Key Vault: every dialect row."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.azure.conftest import POD_TOKEN, Seeded, objects, wi_attrs
from tests.support.azure_standin import AUDIENCE, TENANT
from tests.support.running import RunningProvider, files_of, pod_attributes, versions_of
from tests.support.tokens import pod_token

pytestmark = pytest.mark.azure

PEM = serialization.Encoding.PEM


def _public_pem(key: Any) -> bytes:
    return bytes(key.public_bytes(PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(PEM)


# Each row: objects items, extra parameters, expected {path: (mode, bytes)}, and
# expected {version id: index into seeded.versions[name]} (name, index).
Expect = Callable[[Seeded], tuple[dict[str, tuple[int, bytes]], dict[str, str]]]


def _v(s: Seeded, name: str, i: int) -> str:
    return s.versions[name][i]


ROWS: list[tuple[str, list[str], dict[str, str], Expect]] = [
    (
        "secret-latest",
        ["objectName: plain\nobjectType: secret"],
        {},
        lambda s: ({"plain": (0o644, b"three")}, {"secret/plain": _v(s, "plain", 2)}),
    ),
    (
        "secret-alias-subdir",
        ["objectName: plain\nobjectType: secret\nobjectAlias: app/conf/pw.txt"],
        {},
        lambda s: ({"app/conf/pw.txt": (0o644, b"three")}, {"secret/plain": _v(s, "plain", 2)}),
    ),
    (
        "secret-version",
        ["objectName: plain\nobjectType: secret\nobjectVersion: {v0}"],
        {},
        lambda s: ({"plain": (0o644, b"one")}, {"secret/plain": _v(s, "plain", 0)}),
    ),
    (
        "secret-history-enabled-only",
        ["objectName: plain\nobjectType: secret\nobjectVersionHistory: 5"],
        {},
        lambda s: (
            {"plain/0": (0o644, b"three"), "plain/1": (0o644, b"one")},
            {"secret/plain/0": _v(s, "plain", 2), "secret/plain/1": _v(s, "plain", 0)},
        ),
    ),
    (
        "secret-history-limited",
        ["objectName: plain\nobjectType: secret\nobjectVersionHistory: 1"],
        {},
        lambda s: ({"plain": (0o644, b"three")}, {"secret/plain": _v(s, "plain", 2)}),
    ),
    (
        "secret-history-from-version",
        ["objectName: plain\nobjectType: secret\nobjectVersionHistory: 2\nobjectVersion: {v0}"],
        {},
        lambda s: ({"plain/0": (0o644, b"one")}, {"secret/plain/0": _v(s, "plain", 0)}),
    ),
    (
        "secret-base64",
        ["objectName: b64\nobjectType: secret\nobjectEncoding: base64"],
        {},
        lambda s: ({"b64": (0o644, b"\x00binary\xff")}, {}),
    ),
    (
        "secret-hex",
        ["objectName: hexed\nobjectType: secret\nobjectEncoding: HEX"],
        {},
        lambda s: ({"hexed": (0o644, b"\x01\x02hex")}, {}),
    ),
    (
        "secret-utf8-explicit",
        ["objectName: json\nobjectType: secret\nobjectEncoding: utf-8"],
        {},
        lambda s: ({"json": (0o644, b'{"user": "app", "password": "pa55"}')}, {}),
    ),
    (
        "file-permission",
        ['objectName: plain\nobjectType: secret\nfilePermission: "0600"'],
        {},
        lambda s: ({"plain": (0o600, b"three")}, {}),
    ),
    (
        "key-rsa-latest",
        ["objectName: rsa-key\nobjectType: key"],
        {},
        lambda s: (
            {"rsa-key": (0o644, _public_pem(s.keys["rsa-key"][1]))},
            {"key/rsa-key": _v(s, "rsa-key", 1)},
        ),
    ),
    (
        "key-rsa-version",
        ["objectName: rsa-key\nobjectType: key\nobjectVersion: {rsa0}"],
        {},
        lambda s: (
            {"rsa-key": (0o644, _public_pem(s.keys["rsa-key"][0]))},
            {"key/rsa-key": _v(s, "rsa-key", 0)},
        ),
    ),
    (
        "key-rsa-history",
        ["objectName: rsa-key\nobjectType: key\nobjectVersionHistory: 2"],
        {},
        lambda s: (
            {
                "rsa-key/0": (0o644, _public_pem(s.keys["rsa-key"][1])),
                "rsa-key/1": (0o644, _public_pem(s.keys["rsa-key"][0])),
            },
            {"key/rsa-key/0": _v(s, "rsa-key", 1), "key/rsa-key/1": _v(s, "rsa-key", 0)},
        ),
    ),
    (
        "key-ec-p384",
        ["objectName: ec-key\nobjectType: key\nobjectAlias: keys/ec.pem"],
        {},
        lambda s: (
            {"keys/ec.pem": (0o644, _public_pem(s.keys["ec-key"][0]))},
            {"key/ec-key": _v(s, "ec-key", 0)},
        ),
    ),
    (
        "cert-leaf-pem",
        ["objectName: pfx-cert\nobjectType: cert"],
        {},
        lambda s: (
            {"pfx-cert": (0o644, _cert_pem(s.chains[1].leaf))},
            {"cert/pfx-cert": _v(s, "pfx-cert", 1)},
        ),
    ),
    (
        "cert-history",
        ["objectName: pfx-cert\nobjectType: cert\nobjectVersionHistory: 2"],
        {},
        lambda s: (
            {
                "pfx-cert/0": (0o644, _cert_pem(s.chains[1].leaf)),
                "pfx-cert/1": (0o644, _cert_pem(s.chains[0].leaf)),
            },
            {"cert/pfx-cert/0": _v(s, "pfx-cert", 1), "cert/pfx-cert/1": _v(s, "pfx-cert", 0)},
        ),
    ),
    (
        "cert-secret-pem-kept",
        ["objectName: pem-cert\nobjectType: secret"],
        {},
        lambda s: (
            {"pem-cert": (0o644, s.pem_cert.encode())},
            {"secret/pem-cert": _v(s, "pem-cert", 0)},
        ),
    ),
    (
        "cert-secret-pfx-as-is",
        ["objectName: pfx-cert\nobjectType: secret\nobjectFormat: PFX"],
        {},
        lambda s: ({"pfx-cert": (0o644, base64.b64encode(s.pfx[1]))}, {}),
    ),
    (
        "cert-secret-pfx-binary",
        ["objectName: pfx-cert\nobjectType: secret\nobjectFormat: pfx\nobjectEncoding: base64"],
        {},
        lambda s: ({"pfx-cert": (0o644, s.pfx[1])}, {}),
    ),
    (
        "tenantId-spelling",
        ["objectName: plain\nobjectType: secret"],
        {"tenantID": "", "tenantId": TENANT},
        lambda s: ({"plain": (0o644, b"three")}, {}),
    ),
    (
        "tenantID-wins-over-tenantId",
        ["objectName: plain\nobjectType: secret"],
        {"tenantId": "00000000-0000-0000-0000-000000000000"},
        lambda s: ({"plain": (0o644, b"three")}, {}),
    ),
    (
        "unquoted-octal-permission",
        ["objectName: plain\nobjectType: secret\nfilePermission: 0440"],
        {},
        lambda s: ({"plain": (0o440, b"three")}, {}),
    ),
    (
        "cloud-usgov",
        ["objectName: plain\nobjectType: secret"],
        {"cloudName": "azureusgovernmentcloud"},
        lambda s: ({"plain": (0o644, b"three")}, {}),
    ),
    (
        "values-trimmed",
        ["objectName:   plain  \nobjectType:  secret \nobjectAlias: ' p.txt '"],
        {"keyvaultName": "  polyvault ", "clientID": " 11111111-2222-3333-4444-555555555555 "},
        lambda s: ({"p.txt": (0o644, b"three")}, {}),
    ),
    (
        "several-objects",
        [
            "objectName: plain\nobjectType: secret",
            "objectName: ec-key\nobjectType: key",
            "objectName: pfx-cert\nobjectType: cert\nobjectAlias: tls.crt",
        ],
        {},
        lambda s: (
            {
                "plain": (0o644, b"three"),
                "ec-key": (0o644, _public_pem(s.keys["ec-key"][0])),
                "tls.crt": (0o644, _cert_pem(s.chains[1].leaf)),
            },
            {
                "secret/plain": _v(s, "plain", 2),
                "key/ec-key": _v(s, "ec-key", 0),
                "cert/pfx-cert": _v(s, "pfx-cert", 1),
            },
        ),
    ),
]


@pytest.mark.parametrize(
    ("items", "extra", "expect"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS]
)
def test_dialect_row(
    provider: RunningProvider,
    seeded: Seeded,
    items: list[str],
    extra: dict[str, str],
    expect: Expect,
) -> None:
    fill = {"v0": seeded.versions["plain"][0], "rsa0": seeded.versions["rsa-key"][0]}
    items = [i.replace("{v0}", fill["v0"]).replace("{rsa0}", fill["rsa0"]) for i in items]
    response = provider.mount(wi_attrs(*items, **extra))
    want_files, want_versions = expect(seeded)
    assert files_of(response) == want_files
    got = versions_of(response)
    for vid, version in want_versions.items():
        assert got[vid] == version


def test_pfx_secret_becomes_pem_key_then_chain_leaf_to_root(
    provider: RunningProvider, seeded: Seeded
) -> None:
    response = provider.mount(wi_attrs("objectName: pfx-cert\nobjectType: secret"))
    data = files_of(response)["pfx-cert"][1]
    assert data.startswith(b"-----BEGIN PRIVATE KEY-----\n")  # PKCS#8
    key = serialization.load_pem_private_key(data, None)
    certs = x509.load_pem_x509_certificates(data)
    chain = seeded.chains[1]
    assert certs == [chain.leaf, chain.intermediate, chain.root]
    assert _public_pem(key.public_key()) == _public_pem(certs[0].public_key())  # leaf key
    for child, parent in itertools.pairwise(certs):
        child.verify_directly_issued_by(parent)
    # and the PFX kept as is loads back to the same key and certificate
    pfx = files_of(
        provider.mount(
            wi_attrs(
                "objectName: pfx-cert\nobjectType: secret\nobjectFormat: pfx\n"
                "objectEncoding: base64"
            )
        )
    )["pfx-cert"][1]
    loaded_key, loaded_cert, extra = pkcs12.load_key_and_certificates(pfx, None)
    assert loaded_cert == chain.leaf and loaded_key is not None and len(extra) == 2


def test_plain_list_and_mapping_items_accepted(provider: RunningProvider) -> None:
    # ours: items written as mappings instead of strings work too
    attrs = wi_attrs()
    attrs["objects"] = "array:\n  - objectName: plain\n    objectType: secret\n"
    assert files_of(provider.mount(attrs)) == {"plain": (0o644, b"three")}


# -- failures: gRPC code and what the message must say -------------------------

FAILURES: list[tuple[str, dict[str, Any], grpc.StatusCode, list[str]]] = [
    (
        "pod-identity-deprecated",
        {"items": ["objectName: plain\nobjectType: secret"], "extra": {"usePodIdentity": "true"}},
        grpc.StatusCode.INVALID_ARGUMENT,
        ["usePodIdentity", "deprecated"],
    ),
    (
        "pfx-for-key",
        {"items": ["objectName: rsa-key\nobjectType: key\nobjectFormat: pfx"]},
        grpc.StatusCode.INVALID_ARGUMENT,
        ["rsa-key", "objectFormat pfx"],
    ),
    (
        "encoding-for-cert",
        {"items": ["objectName: pfx-cert\nobjectType: cert\nobjectEncoding: base64"]},
        grpc.StatusCode.INVALID_ARGUMENT,
        ["pfx-cert", "objectEncoding"],
    ),
    (
        "bad-type",
        {"items": ["objectName: plain\nobjectType: secrets"]},
        grpc.StatusCode.INVALID_ARGUMENT,
        ["plain", "objectType", "secret, key or cert"],
    ),
    (
        "bad-encoding",
        {"items": ["objectName: plain\nobjectType: secret\nobjectEncoding: rot13"]},
        grpc.StatusCode.INVALID_ARGUMENT,
        ["plain", "objectEncoding", "rot13"],
    ),
    (
        "typo-key",
        {"items": ["objectName: plain\nobjectType: secret\nobjectVersionn: x"]},
        grpc.StatusCode.INVALID_ARGUMENT,
        ["objectVersionn"],
    ),
    (
        "bad-vault-name",
        {
            "items": ["objectName: plain\nobjectType: secret"],
            "extra": {"keyvaultName": "no_underscores"},
        },
        grpc.StatusCode.INVALID_ARGUMENT,
        ["keyvaultName", "3-24"],
    ),
    (
        "bad-cloud",
        {
            "items": ["objectName: plain\nobjectType: secret"],
            "extra": {"cloudName": "AzureStackCloud"},
        },
        grpc.StatusCode.INVALID_ARGUMENT,
        ["cloudName", "AzureStackCloud"],
    ),
    (
        "alias-escapes",
        {"items": ["objectName: plain\nobjectType: secret\nobjectAlias: ../x"]},
        grpc.StatusCode.INVALID_ARGUMENT,
        ["plain", "'..'"],
    ),
    (
        "alias-absolute",
        {"items": ["objectName: plain\nobjectType: secret\nobjectAlias: /etc/x"]},
        grpc.StatusCode.INVALID_ARGUMENT,
        ["plain", "absolute"],
    ),
    (
        "duplicate-file",
        {
            "items": [
                "objectName: plain\nobjectType: secret",
                "objectName: x\nobjectType: secret\nobjectAlias: plain",
            ]
        },
        grpc.StatusCode.INVALID_ARGUMENT,
        ["'plain' is already used"],
    ),
    (
        "no-tenant",
        {"items": ["objectName: plain\nobjectType: secret"], "extra": {"tenantID": ""}},
        grpc.StatusCode.INVALID_ARGUMENT,
        ["tenantID"],
    ),
    ("no-objects", {"items": []}, grpc.StatusCode.INVALID_ARGUMENT, ["objects"]),
    (
        "every-problem-at-once",
        {
            "items": [
                "objectName: a\nobjectType: nope",
                "objectName: b\nobjectType: key\nobjectFormat: pfx",
            ],
            "extra": {"keyvaultName": "x"},
        },
        grpc.StatusCode.INVALID_ARGUMENT,
        ["keyvaultName", "'a'", "'b'"],
    ),
    (
        "missing-object",
        {"items": ["objectName: nothere\nobjectType: secret"]},
        grpc.StatusCode.NOT_FOUND,
        ["nothere", "SecretNotFound", "polyvault"],
    ),
    (
        "missing-version",
        {"items": ["objectName: plain\nobjectType: secret\nobjectVersion: 0000"]},
        grpc.StatusCode.NOT_FOUND,
        ["plain", "0000"],
    ),
    (
        "missing-key",
        {"items": ["objectName: nokey\nobjectType: key"]},
        grpc.StatusCode.NOT_FOUND,
        ["nokey", "KeyNotFound"],
    ),
    (
        "history-from-unknown-version",
        {
            "items": [
                "objectName: plain\nobjectType: secret\nobjectVersionHistory: 2\n"
                "objectVersion: 0000"
            ]
        },
        grpc.StatusCode.NOT_FOUND,
        ["plain", "no enabled version"],
    ),
    (
        "oct-key",
        {"items": ["objectName: oct-key\nobjectType: key"]},
        grpc.StatusCode.INVALID_ARGUMENT,
        ["oct-key", "oct-HSM", "RSA and EC"],
    ),
    (
        "disabled-latest",
        {"items": ["objectName: gone-latest\nobjectType: secret"]},
        grpc.StatusCode.PERMISSION_DENIED,
        ["gone-latest", "disabled"],
    ),
    # Another service account (a fresh identity) whose token AAD does not accept.
    (
        "wrong-assertion",
        {
            "items": ["objectName: plain\nobjectType: secret"],
            "token": pod_token(AUDIENCE, "default", "intruder"),
            "sa": "intruder",
        },
        grpc.StatusCode.PERMISSION_DENIED,
        ["AuthFailed", "workload identity", "AADSTS700213"],
    ),
    (
        "unknown-tenant",
        {
            "items": ["objectName: plain\nobjectType: secret"],
            "extra": {"tenantID": "00000000-0000-0000-0000-000000000000"},
        },
        grpc.StatusCode.PERMISSION_DENIED,
        ["AuthFailed", "not configured to acquire tokens for tenant"],
    ),
    (
        "unknown-client",
        {
            "items": ["objectName: plain\nobjectType: secret"],
            "extra": {"clientID": "99999999-0000-0000-0000-000000000000"},
        },
        grpc.StatusCode.PERMISSION_DENIED,
        ["99999999-0000-0000-0000-000000000000", "AADSTS700213"],
    ),
]


@pytest.mark.parametrize(
    ("case", "code", "words"), [f[1:] for f in FAILURES], ids=[f[0] for f in FAILURES]
)
def test_failure(
    provider: RunningProvider, case: dict[str, Any], code: grpc.StatusCode, words: list[str]
) -> None:
    attrs = wi_attrs(
        *case["items"],
        token=case.get("token", POD_TOKEN),
        service_account=case.get("sa", "app"),
        **case.get("extra", {}),
    )
    if not case["items"]:
        attrs["objects"] = "array: []"
    err = provider.mount_error(attrs)
    assert err.code() == code, err.details()
    for word in words:
        assert word in err.details()
    assert POD_TOKEN not in err.details()


def test_missing_workload_identity_token(provider: RunningProvider) -> None:
    attrs = pod_attributes(
        {
            "keyvaultName": "polyvault",
            "tenantID": TENANT,
            "clientID": "11111111-2222-3333-4444-555555555555",
            "objects": objects("objectName: plain\nobjectType: secret"),
        }
    )
    err = provider.mount_error(attrs)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "api://AzureADTokenExchange" in err.details() and "clientID" in err.details()


def test_vault_access_policy_denies(provider: RunningProvider, seeded: Seeded) -> None:
    seeded.world.vault.allowed = {"someone-else"}
    err = provider.mount_error(wi_attrs("objectName: plain\nobjectType: secret"))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "plain" in err.details() and "HTTP 403" in err.details()
