"""Mounting through the real socket from a real OpenBao: every row of the Vault dialect."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from provider.backends.vault import VaultSettings, VaultTls
from tests.support.openbao import OTHER_MOUNT
from tests.support.running import RunningProvider, files_of, versions_of
from tests.vault.conftest import BINARY, CUSTOM_AUDIENCE, KNOWN_SECRET, ProviderFactory, Vault

pytestmark = pytest.mark.vault

Attrs = Callable[..., dict[str, str]]


def one(object_yaml: str, **params: str) -> dict[str, str]:
    return {"roleName": "app", "objects": object_yaml, **params}


# (id, object YAML, expected file path, expected mode, expected bytes or None for JSON checks,
#  expected version: "kv2:N" or "hmac")
DIALECT = [
    ("kv2-key", "- objectName: pw\n  secretPath: secret/data/app\n  secretKey: password",
     "pw", 0o644, KNOWN_SECRET.encode(), "kv2:1"),
    ("kv2-key-v1-prefix",
     "- objectName: pw\n  secretPath: v1/secret/data/app\n  secretKey: username",
     "pw", 0o644, b"admin", "kv2:1"),
    ("kv2-key-slash-v1-prefix",
     "- objectName: pw\n  secretPath: /v1/secret/data/app\n  secretKey: username",
     "pw", 0o644, b"admin", "kv2:1"),
    ("kv2-key-leading-slash",
     "- objectName: pw\n  secretPath: /secret/data/app\n  secretKey: username",
     "pw", 0o644, b"admin", "kv2:1"),
    ("kv2-non-string-as-go-json",
     "- objectName: cfg\n  secretPath: secret/data/app\n  secretKey: config",
     "cfg", 0o644, b'{"a":1,"b":[true,"x\\u003cy\\u0026z"]}', "kv2:1"),
    # A key that does not exist as written is read as a path into nested maps.
    ("kv2-nested-key-path",
     "- objectName: a\n  secretPath: secret/data/app\n  secretKey: config.a",
     "a", 0o644, b"1", "kv2:1"),
    ("kv2-nested-key-path-to-list",
     "- objectName: b\n  secretPath: secret/data/app\n  secretKey: config.b",
     "b", 0o644, b'[true,"x\\u003cy\\u0026z"]', "kv2:1"),
    ("kv2-latest", "- objectName: v\n  secretPath: secret/data/versioned\n  secretKey: value",
     "v", 0o644, b"two", "kv2:2"),
    ("kv2-query-version", "- objectName: v\n  secretPath: secret/data/versioned?version=1\n"
     "  secretKey: value", "v", 0o644, b"one", "kv2:1"),
    ("kv1-key", "- objectName: t\n  secretPath: kv1/app\n  secretKey: token",
     "t", 0o644, b"kv1-value", "hmac"),
    ("kv1-number-as-json", "- objectName: port\n  secretPath: kv1/app\n  secretKey: port",
     "port", 0o644, b"5432", "hmac"),
    ("encoding-base64", "- objectName: b\n  secretPath: secret/data/app\n  secretKey: b64\n"
     "  encoding: base64", "b", 0o644, BINARY, "kv2:1"),
    ("encoding-hex", "- objectName: h\n  secretPath: secret/data/app\n  secretKey: hex\n"
     "  encoding: hex", "h", 0o644, BINARY, "kv2:1"),
    ("encoding-utf8", "- objectName: h\n  secretPath: secret/data/app\n  secretKey: hex\n"
     "  encoding: utf-8", "h", 0o644, BINARY.hex().encode(), "kv2:1"),
    ("file-permission-octal", "- objectName: pw\n  secretPath: secret/data/app\n"
     "  secretKey: username\n  filePermission: 0600", "pw", 0o600, b"admin", "kv2:1"),
    ("file-permission-0o", "- objectName: pw\n  secretPath: secret/data/app\n"
     "  secretKey: username\n  filePermission: 0o440", "pw", 0o440, b"admin", "kv2:1"),
    ("file-permission-zero-is-default", "- objectName: pw\n  secretPath: secret/data/app\n"
     "  secretKey: username\n  filePermission: 0", "pw", 0o644, b"admin", "kv2:1"),
    ("object-name-subdirectory", "- objectName: db/user\n  secretPath: secret/data/app\n"
     "  secretKey: username", "db/user", 0o644, b"admin", "kv2:1"),
    ("method-get-explicit", "- objectName: pw\n  secretPath: secret/data/app\n"
     "  secretKey: username\n  method: get", "pw", 0o644, b"admin", "kv2:1"),
    ("kv1-whole-response", "- objectName: all\n  secretPath: kv1/app", "all", 0o644, None, "hmac"),
    ("kv2-whole-response", "- objectName: all\n  secretPath: secret/data/app",
     "all", 0o644, None, "kv2:1"),
    ("encoding-ignored-without-key", "- objectName: all\n  secretPath: kv1/app\n"
     "  encoding: base64", "all", 0o644, None, "hmac"),
]


@pytest.mark.parametrize(
    ("objects", "path", "mode", "expected", "version"),
    [pytest.param(*row[1:], id=row[0]) for row in DIALECT],
)
def test_dialect_row(  # noqa: PLR0917 - one parameter per column of the table
    provider: RunningProvider, attrs: Attrs, objects: str, path: str,
    mode: int, expected: bytes | None, version: str,
) -> None:
    response = provider.mount(attrs(one(objects)))
    files = files_of(response)
    assert list(files) == [path]
    got_mode, content = files[path]
    assert got_mode == mode
    if expected is not None:
        assert content == expected
    else:
        whole = json.loads(content)
        assert list(whole)[:6] == [
            "request_id", "lease_id", "lease_duration", "renewable", "data", "warnings"
        ]
        data = whole["data"].get("data", whole["data"])
        assert data.get("token", data.get("username")) in ("kv1-value", "admin")
        assert b" " not in content.split(b'"data"')[0]  # compact, as Go writes it
    versions = versions_of(response)
    assert list(versions) == [path]
    if version.startswith("kv2:"):
        assert versions[path] == version.removeprefix("kv2:")
    else:
        assert len(versions[path]) == 64 and int(versions[path], 16) >= 0
        assert versions[path] != hashlib.sha256(content).hexdigest()


def test_default_permission_comes_from_the_request(provider: RunningProvider,
                                                   attrs: Attrs) -> None:
    objects = "- objectName: pw\n  secretPath: secret/data/app\n  secretKey: username"
    response = provider.mount(attrs(one(objects)), permission="288")  # 0440
    assert files_of(response)["pw"][0] == 0o440


def test_many_objects_one_mount_keep_their_order(provider: RunningProvider,
                                                 attrs: Attrs) -> None:
    objects = (
        "- objectName: b\n  secretPath: secret/data/app\n  secretKey: username\n"
        "- objectName: a\n  secretPath: kv1/app\n  secretKey: token\n"
        "- objectName: c\n  secretPath: secret/data/versioned?version=1\n  secretKey: value\n"
        "- objectName: d\n  secretPath: secret/data/versioned\n  secretKey: value\n"
    )
    files = files_of(provider.mount(attrs(one(objects))))
    assert [(p, c) for p, (_, c) in files.items()] == [
        ("b", b"admin"), ("a", b"kv1-value"), ("c", b"one"), ("d", b"two")
    ]


@pytest.mark.parametrize(
    ("params", "sa", "audience"),
    [
        pytest.param({"vaultAuthMountPath": OTHER_MOUNT, "roleName": "app2"}, "app", "vault",
                     id="vaultAuthMountPath"),
        pytest.param({"vaultKubernetesMountPath": OTHER_MOUNT, "roleName": "app2"}, "app",
                     "vault", id="vaultKubernetesMountPath"),
        pytest.param({"vaultAuthMountPath": f"auth/{OTHER_MOUNT}", "roleName": "app2"}, "app",
                     "vault", id="auth-prefixed-mount"),
        pytest.param({"audience": CUSTOM_AUDIENCE, "roleName": "app-aud"}, "app",
                     CUSTOM_AUDIENCE, id="audience"),
    ],
)
def test_auth_parameters(provider: RunningProvider, attrs: Attrs, params: dict[str, str],
                         sa: str, audience: str) -> None:
    objects = "- objectName: pw\n  secretPath: secret/data/app\n  secretKey: password"
    response = provider.mount(attrs({**one(objects), **params}, sa=sa, audience=audience))
    assert files_of(response)["pw"][1] == KNOWN_SECRET.encode()


def test_vault_namespace(provider: RunningProvider, attrs: Attrs, vault: Vault) -> None:
    if not vault.namespaces:
        pytest.skip("this OpenBao build serves no namespaces")
    objects = "- objectName: pw\n  secretPath: secret/data/app\n  secretKey: password"
    response = provider.mount(attrs(one(objects, vaultNamespace="team1")))
    assert files_of(response)["pw"][1] == b"team1-password"


def test_objects_from_several_namespaces_in_one_class(
    provider: RunningProvider, attrs: Attrs, vault: Vault
) -> None:
    """A per-object vaultNamespace: one login per namespace, one mount, all or nothing."""
    if not vault.namespaces:
        pytest.skip("this OpenBao build serves no namespaces")
    objects = (
        "- objectName: root-pw\n  secretPath: secret/data/app\n  secretKey: password\n"
        "- objectName: team1-pw\n  secretPath: secret/data/app\n  secretKey: password\n"
        "  vaultNamespace: team1\n"
        # The class's own namespace named explicitly: the same read as root-pw.
        "- objectName: again\n  secretPath: secret/data/app\n  secretKey: password\n"
        "  vaultNamespace: ''\n"
    )
    files = files_of(provider.mount(attrs(one(objects))))
    assert files["root-pw"][1] == KNOWN_SECRET.encode()
    assert files["team1-pw"][1] == b"team1-password"
    assert files["again"][1] == KNOWN_SECRET.encode()
    # A namespace the role cannot log in to fails the whole mount, naming it.
    bad = objects + "- objectName: x\n  secretPath: secret/data/app\n  vaultNamespace: nope\n"
    error = provider.mount_error(attrs(one(bad)))
    assert error.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND)


def test_namespace_from_provider_settings(make_provider: ProviderFactory, attrs: Attrs,
                                          vault: Vault) -> None:
    if not vault.namespaces:
        pytest.skip("this OpenBao build serves no namespaces")
    provider = make_provider(VaultSettings(address=vault.address, namespace="team1"))
    objects = "- objectName: pw\n  secretPath: secret/data/app\n  secretKey: password"
    assert files_of(provider.mount(attrs(one(objects))))["pw"][1] == b"team1-password"


def test_address_from_provider_settings_and_spc_wins(make_provider: ProviderFactory,
                                                     attrs: Attrs, vault: Vault) -> None:
    objects = "- objectName: pw\n  secretPath: secret/data/app\n  secretKey: username"
    from_flags = make_provider(VaultSettings(address=vault.address))
    assert files_of(from_flags.mount(attrs(one(objects))))["pw"][1] == b"admin"
    # A provider default that cannot work, overridden by the SecretProviderClass.
    overridden = make_provider(VaultSettings(address="http://127.0.0.1:9"))
    response = overridden.mount(attrs(one(objects, vaultAddress=vault.address)))
    assert files_of(response)["pw"][1] == b"admin"


# -- versions -------------------------------------------------------------------


def test_hmac_version_is_stable_keyed_and_config_bound(
    make_provider: ProviderFactory, attrs: Attrs, vault: Vault
) -> None:
    objects = "- objectName: t\n  secretPath: kv1/app\n  secretKey: token"
    same_content = objects + "\n  filePermission: 0600"  # same content, other config
    a = make_provider(VaultSettings(address=vault.address), hmac_key=b"a" * 32)
    b = make_provider(VaultSettings(address=vault.address), hmac_key=b"b" * 32)
    first = versions_of(a.mount(attrs(one(objects))))["t"]
    assert versions_of(a.mount(attrs(one(objects))))["t"] == first  # stable
    assert versions_of(b.mount(attrs(one(objects))))["t"] != first  # keyed
    assert versions_of(a.mount(attrs(one(same_content))))["t"] != first  # config-bound
    assert first != hashlib.sha256(b"kv1-value").hexdigest()


def test_hmac_version_changes_with_content(provider: RunningProvider, attrs: Attrs,
                                           vault: Vault) -> None:
    root = vault.root()
    root.write_data("kv1/rotating", data={"v": "first"})
    objects = "- objectName: r\n  secretPath: kv1/rotating\n  secretKey: v"
    before = versions_of(provider.mount(attrs(one(objects))))["r"]
    root.write_data("kv1/rotating", data={"v": "second"})
    response = provider.mount(attrs(one(objects)))
    assert files_of(response)["r"][1] == b"second"
    assert versions_of(response)["r"] != before


# -- PKI: write-style reads ----------------------------------------------------------

PKI = (
    "- objectName: tls.crt\n  secretPath: pki/issue/example\n  secretKey: certificate\n"
    "  method: PUT\n  secretArgs:\n    common_name: app.example.com\n    ttl: 1h\n"
    "- objectName: tls.key\n  secretPath: pki/issue/example\n  secretKey: private_key\n"
    "  method: PUT\n  secretArgs:\n    ttl: 1h\n    common_name: app.example.com\n"
    "  filePermission: 0600\n"
)


def _public_numbers_match(cert_pem: bytes, key_pem: bytes) -> bool:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(
        cert.public_key().public_bytes(serialization.Encoding.DER, spki)
        == key.public_key().public_bytes(serialization.Encoding.DER, spki)
    )


def test_pki_issue_certificate_and_key_from_one_response(provider: RunningProvider,
                                                          attrs: Attrs) -> None:
    from cryptography import x509

    response = provider.mount(attrs(one(PKI)))
    files = files_of(response)
    cert_pem, key_pem = files["tls.crt"][1], files["tls.key"][1]
    assert files["tls.key"][0] == 0o600
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert cert.subject.rfc4514_string() == "CN=app.example.com"
    assert _public_numbers_match(cert_pem, key_pem)
    versions = versions_of(response)
    assert versions["tls.crt"] != versions["tls.key"]


def test_different_secret_args_are_different_requests(provider: RunningProvider,
                                                      attrs: Attrs) -> None:
    from cryptography import x509

    objects = PKI.replace("common_name: app.example.com\n    ttl",
                          "common_name: a.example.com\n    ttl")
    files = files_of(provider.mount(attrs(one(objects))))
    cert = x509.load_pem_x509_certificate(files["tls.crt"][1])
    assert cert.subject.rfc4514_string() == "CN=a.example.com"
    # The key belongs to the other request (the peer would have reused one response).
    assert not _public_numbers_match(files["tls.crt"][1], files["tls.key"][1])


def test_whole_pki_response_is_json(provider: RunningProvider, attrs: Attrs) -> None:
    objects = ("- objectName: bundle.json\n  secretPath: pki/issue/example\n  method: POST\n"
               "  secretArgs: {common_name: w.example.com}\n")
    content = files_of(provider.mount(attrs(one(objects))))["bundle.json"][1]
    data: dict[str, Any] = json.loads(content)["data"]
    assert _public_numbers_match(data["certificate"].encode(), data["private_key"].encode())


# -- TLS ----------------------------------------------------------------------------


def _tls_case(vault: Vault, case: str) -> tuple[dict[str, str], VaultSettings]:
    tls = vault.server.tls
    assert tls is not None
    by_name = vault.server.tls_address.replace("127.0.0.1", "localhost")
    mtls_by_name = vault.server.mtls_address.replace("127.0.0.1", "localhost")
    plain = VaultSettings(address=vault.address)
    cases: dict[str, tuple[dict[str, str], VaultSettings]] = {
        "ca-file": ({"vaultAddress": by_name, "vaultCACertPath": str(tls.ca_cert)}, plain),
        "ca-directory": ({"vaultAddress": by_name, "vaultCADirectory": str(tls.ca_dir)}, plain),
        "server-name": ({"vaultAddress": vault.server.tls_address,
                         "vaultCACertPath": str(tls.ca_cert),
                         "vaultTLSServerName": "vault.test"}, plain),
        "skip-verify": ({"vaultAddress": vault.server.tls_address,
                         "vaultSkipTLSVerify": "true"}, plain),
        "client-certificate": ({"vaultAddress": mtls_by_name,
                                "vaultCACertPath": str(tls.ca_cert),
                                "vaultTLSClientCertPath": str(tls.client_cert),
                                "vaultTLSClientKeyPath": str(tls.client_key)}, plain),
        "provider-flags": ({}, VaultSettings(
            address=vault.server.mtls_address,
            tls=VaultTls(ca_cert=str(tls.ca_cert), server_name="vault.test",
                         client_cert=str(tls.client_cert), client_key=str(tls.client_key)))),
        "spc-overrides-flag-ca": ({"vaultCACertPath": str(tls.ca_cert)}, VaultSettings(
            address=by_name, tls=VaultTls(ca_cert=str(tls.other_ca)))),
        "spc-skip-false-overrides-flag": ({"vaultSkipTLSVerify": "false",
                                           "vaultCACertPath": str(tls.ca_cert)}, VaultSettings(
            address=by_name, tls=VaultTls(skip_verify=True))),
    }
    return cases[case]


TLS_OK = ["ca-file", "ca-directory", "server-name", "skip-verify", "client-certificate",
          "provider-flags", "spc-overrides-flag-ca", "spc-skip-false-overrides-flag"]


@pytest.mark.parametrize("case", TLS_OK)
def test_tls_modes(make_provider: ProviderFactory, attrs: Attrs, vault: Vault,
                   case: str) -> None:
    params, settings = _tls_case(vault, case)
    provider = make_provider(settings)
    objects = "- objectName: pw\n  secretPath: secret/data/app\n  secretKey: password"
    response = provider.mount(attrs(one(objects, **params)))
    assert files_of(response)["pw"][1] == KNOWN_SECRET.encode()
    # The second mount reuses the session (and the cached token).
    assert files_of(provider.mount(attrs(one(objects, **params))))["pw"][1] == KNOWN_SECRET.encode()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param("unknown-ca", "vaultCACertPath", id="unknown-ca"),
        pytest.param("name-mismatch", "vaultTLSServerName", id="address-not-in-certificate"),
        pytest.param("wrong-server-name", "vaultTLSServerName", id="wrong-server-name"),
        pytest.param("missing-ca-file", "vaultCACertPath", id="missing-ca-file"),
        pytest.param("empty-ca-directory", "vaultCADirectory", id="ca-directory-without-pem"),
        pytest.param("bad-client-key", "vaultTLSClientKeyPath", id="client-key-unreadable"),
    ],
)
def test_tls_failures_are_invalid_argument(provider: RunningProvider, attrs: Attrs,
                                           vault: Vault, case: str, expected: str) -> None:
    import grpc

    tls = vault.server.tls
    assert tls is not None
    by_name = vault.server.tls_address.replace("127.0.0.1", "localhost")
    params = {
        "unknown-ca": {"vaultAddress": by_name, "vaultCACertPath": str(tls.other_ca)},
        "name-mismatch": {"vaultAddress": vault.server.tls_address,
                          "vaultCACertPath": str(tls.ca_cert)},
        "wrong-server-name": {"vaultAddress": by_name, "vaultCACertPath": str(tls.ca_cert),
                              "vaultTLSServerName": "elsewhere.test"},
        "missing-ca-file": {"vaultAddress": by_name, "vaultCACertPath": "/nonexistent/ca.pem"},
        "empty-ca-directory": {"vaultAddress": by_name,
                               "vaultCADirectory": str(tls.directory / "nothing")},
        "bad-client-key": {"vaultAddress": by_name, "vaultCACertPath": str(tls.ca_cert),
                           "vaultTLSClientCertPath": str(tls.client_cert),
                           "vaultTLSClientKeyPath": "/nonexistent/key.pem"},
    }[case]
    if case == "empty-ca-directory":
        (tls.directory / "nothing").mkdir(exist_ok=True)
    objects = "- objectName: pw\n  secretPath: secret/data/app\n  secretKey: password"
    err = provider.mount_error(attrs(one(objects, **params)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("TLSFailed: ")
    assert expected in err.details()


def test_client_certificate_required_but_missing(make_provider: ProviderFactory, attrs: Attrs,
                                                 vault: Vault) -> None:
    import grpc

    tls = vault.server.tls
    assert tls is not None
    provider = make_provider(VaultSettings(address=vault.address), mount_timeout=10.0)
    params = {"vaultAddress": vault.server.mtls_address.replace("127.0.0.1", "localhost"),
              "vaultCACertPath": str(tls.ca_cert)}
    objects = "- objectName: pw\n  secretPath: secret/data/app\n  secretKey: password"
    err = provider.mount_error(attrs(one(objects, **params)))
    # TLS 1.3: the server's "certificate required" alert (INVALID_ARGUMENT) often
    # arrives as a bare EOF instead (UNAVAILABLE); both must point at the fix.
    assert err.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAVAILABLE)
    assert "vaultTLSClientCertPath" in err.details()
