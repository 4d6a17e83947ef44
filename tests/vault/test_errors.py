"""Failures through the real socket: status codes, and messages that say what to fix."""

from __future__ import annotations

import logging
from collections.abc import Callable

import grpc
import pytest

from provider.backends.vault import VaultSettings
from tests.support.openbao import TokenSigner, add_policy, add_role, enable_jwt_auth, openbao_server
from tests.support.running import RunningProvider, files_of
from tests.vault.conftest import KNOWN_SECRET, ProviderFactory, Vault, backend_of, cached_token

pytestmark = pytest.mark.vault

Attrs = Callable[..., dict[str, str]]
APP = "- objectName: pw\n  secretPath: secret/data/app\n  secretKey: password"


def spc(objects: str = APP, **params: str) -> dict[str, str]:
    return {"roleName": "app", "objects": objects, **params}


@pytest.mark.parametrize(
    ("objects", "names"),
    [
        pytest.param("- objectName: gone\n  secretPath: secret/data/missing\n  secretKey: x",
                     ["'gone'", "secret/data/missing"], id="kv2-missing-path"),
        pytest.param("- objectName: gone\n  secretPath: kv1/missing", ["'gone'", "kv1/missing"],
                     id="kv1-missing-path"),
        pytest.param("- objectName: nokey\n  secretPath: secret/data/app\n  secretKey: nope",
                     ["'nokey'", "'secretKey'", "'nope'"], id="missing-key"),
        pytest.param("- objectName: deep\n  secretPath: secret/data/app\n  secretKey: config.z",
                     ["'deep'", "'config.z'"], id="missing-nested-key"),
        pytest.param("- objectName: deep\n  secretPath: secret/data/app\n"
                     "  secretKey: username.x", ["'username.x'"], id="path-through-a-string"),
        pytest.param("- objectName: v9\n  secretPath: secret/data/versioned?version=9\n"
                     "  secretKey: value", ["'v9'", "version=9"], id="missing-version"),
    ],
)
def test_not_found_names_the_object(provider: RunningProvider, attrs: Attrs, objects: str,
                                    names: list[str]) -> None:
    err = provider.mount_error(attrs(spc(objects)))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert err.details().startswith("ObjectNotFound: ")
    for name in names:
        assert name in err.details()


def test_denied_login_right_after_the_allowed_pod(provider: RunningProvider,
                                                  attrs: Attrs) -> None:
    assert files_of(provider.mount(attrs(spc())))["pw"][1] == KNOWN_SECRET.encode()
    # Same SecretProviderClass, a service account the role is not bound to.
    err = provider.mount_error(attrs(spc(), sa="other"))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert err.details().startswith("AuthFailed: ")
    assert "role 'app'" in err.details() and "default/other" in err.details()


def test_denied_read_names_role_and_path(provider: RunningProvider, attrs: Attrs) -> None:
    assert files_of(provider.mount(attrs(spc())))["pw"][1] == KNOWN_SECRET.encode()
    # "other" may log in with its own role, but its policy does not cover the path.
    err = provider.mount_error(attrs(spc(roleName="other"), sa="other"))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert err.details().startswith("AccessDenied: ")
    for part in ("'pw'", "role 'other'", "secret/data/app", "permission denied"):
        assert part in err.details()
    # ...and its own path works with the same identity.
    own = "- objectName: o\n  secretPath: secret/data/other\n  secretKey: value"
    response = provider.mount(attrs(spc(own, roleName="other"), sa="other"))
    assert files_of(response)["o"][1] == b"others"


def test_forged_token_is_rejected(provider: RunningProvider, attrs: Attrs) -> None:
    forged = TokenSigner().token("app")  # right claims, wrong signing key
    err = provider.mount_error(attrs(spc(), token=forged))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert err.details().startswith("AuthFailed: ")


def test_unknown_role_is_permission_denied(provider: RunningProvider, attrs: Attrs) -> None:
    err = provider.mount_error(attrs(spc(roleName="nope")))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "role 'nope'" in err.details()


def test_missing_token_for_audience(provider: RunningProvider, attrs: Attrs) -> None:
    err = provider.mount_error(attrs(spc(audience="elsewhere")))  # token is for "vault"
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("MissingToken: ")
    assert "'elsewhere'" in err.details()


def test_unreachable_vault_is_unavailable(make_provider: ProviderFactory, attrs: Attrs,
                                          vault: Vault) -> None:
    from tests.support.openbao import free_port_pair

    provider = make_provider(VaultSettings(address=vault.address), mount_timeout=10.0)
    err = provider.mount_error(attrs(spc(vaultAddress=f"http://127.0.0.1:{free_port_pair()}")))
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert err.details().startswith("BackendUnavailable: ")
    assert "cannot reach Vault" in err.details()


def test_sealed_vault_is_unavailable(make_provider: ProviderFactory, attrs: Attrs) -> None:
    signer = TokenSigner()
    with openbao_server() as bao:
        root = bao.client()
        enable_jwt_auth(root, signer)
        add_policy(root, "p", {"secret/data/s": ["read"]})
        add_role(root, "app", ["app"], ["p"])
        root.secrets.kv.v2.create_or_update_secret(path="s", secret={"k": "v"},
                                                    mount_point="secret")
        provider = make_provider(VaultSettings(address=bao.address), mount_timeout=10.0)
        objects = "- objectName: k\n  secretPath: secret/data/s\n  secretKey: k"
        params = spc(objects)
        token = signer.token("app")
        assert files_of(provider.mount(attrs(params, token=token)))["k"][1] == b"v"
        root.sys.seal()
        err = provider.mount_error(attrs(params, token=token))
        assert err.code() == grpc.StatusCode.UNAVAILABLE
        assert "sealed" in err.details()
        backend_of(provider).tokens.clear()  # the login path is refused too
        err = provider.mount_error(attrs(params, token=token))
        assert err.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_unsupported_method_is_invalid_argument_not_transient(
    provider: RunningProvider, attrs: Attrs, method: str
) -> None:
    """Vault's 405 (hvac: UnexpectedError) must not be UNAVAILABLE: the driver would retry it."""
    objects = f"- objectName: health\n  secretPath: sys/health\n  method: {method}"
    err = provider.mount_error(attrs(spc(objects)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert err.details().startswith("BackendRejected: object 'health'"), err.details()
    assert f"does not support {method} sys/health here (check 'method')" in err.details()


INVALID = [
    ("missing-role", {"roleName": ""}, ["'roleName' is required"]),
    ("both-mounts", {"vaultAuthMountPath": "a", "vaultKubernetesMountPath": "b"},
     ["'vaultAuthMountPath' and 'vaultKubernetesMountPath'"]),
    ("bad-address", {"vaultAddress": "vault:8200"}, ["'vaultAddress'"]),
    ("broken-ipv6-address", {"vaultAddress": "http://[::1"}, ["'vaultAddress'"]),
    ("bad-port-address", {"vaultAddress": "https://vault:99999"}, ["'vaultAddress'"]),
    ("word-port-address", {"vaultAddress": "https://vault:port"}, ["'vaultAddress'"]),
    ("bad-skip-verify", {"vaultSkipTLSVerify": "maybe"}, ["'vaultSkipTLSVerify'"]),
    ("cert-without-key", {"vaultTLSClientCertPath": "/c.pem"}, ["'vaultTLSClientKeyPath'"]),
    ("no-objects", {"objects": ""}, ["'objects' is required"]),
    ("objects-not-list", {"objects": "objectName: a"}, ["must be a YAML list"]),
    ("objects-bad-yaml", {"objects": "- [a"}, ["not valid YAML"]),
    ("missing-object-name", {"objects": "- secretPath: a/b"}, ["'objectName' is required"]),
    ("missing-secret-path", {"objects": "- objectName: a"}, ["object 'a'", "'secretPath'"]),
    ("duplicate-object-name", {"objects": "- {objectName: a, secretPath: x}\n"
                                          "- {objectName: a, secretPath: y}"},
     ["object 'a'", "unique"]),
    ("bad-encoding", {"objects": "- {objectName: a, secretPath: x, secretKey: k, encoding: b32}"},
     ["object 'a'", "'encoding'"]),
    ("bad-permission", {"objects": "- {objectName: a, secretPath: x, filePermission: 01000}"},
     ["object 'a'", "'filePermission'"]),
    ("bad-permission-string", {"objects": "- {objectName: a, secretPath: x, filePermission: rw}"},
     ["object 'a'", "'filePermission'"]),
    ("bad-method", {"objects": "- {objectName: a, secretPath: x, method: FETCH}"},
     ["object 'a'", "'method'"]),
    ("args-not-map", {"objects": "- {objectName: a, secretPath: x, secretArgs: [1]}"},
     ["object 'a'", "'secretArgs'"]),
    ("unknown-key", {"objects": "- {objectName: a, secretPath: x, secretKye: k}"},
     ["objects[0]", "'secretKye'"]),
    ("bad-path-escape", {"objects": "- {objectName: ../a, secretPath: x}"}, ["'../a'"]),
    ("absolute-object-name", {"objects": "- {objectName: /etc/a, secretPath: x}"},
     ["'/etc/a'"]),
    # Sent as the X-Vault-Namespace header: a line break would add headers of its own.
    ("namespace-line-break", {"vaultNamespace": "team1\r\nX-Vault-Token: stolen"},
     ["'vaultNamespace'", "printable ASCII"]),
    ("object-namespace-non-ascii",
     {"objects": "- {objectName: a, secretPath: x, vaultNamespace: \"\u00e9quipe\"}"},
     ["object 'a'", "'vaultNamespace'"]),
]


@pytest.mark.parametrize(("change", "expected"),
                         [pytest.param(c, e, id=i) for i, c, e in INVALID])
def test_invalid_parameters(provider: RunningProvider, attrs: Attrs, change: dict[str, str],
                            expected: list[str]) -> None:
    err = provider.mount_error(attrs({**spc(), **change}))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    for part in expected:
        assert part in err.details()


def test_every_problem_is_reported_at_once(provider: RunningProvider, attrs: Attrs) -> None:
    params = {
        "roleName": "",
        "vaultAuthMountPath": "a",
        "vaultKubernetesMountPath": "b",
        "objects": "- {objectName: a, secretPath: x, encoding: rot13}\n- {objectName: b}",
    }
    err = provider.mount_error(attrs(params))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    for part in ("'roleName'", "'vaultKubernetesMountPath'", "'encoding'", "'secretPath'"):
        assert part in err.details()


def test_encoding_that_does_not_decode(provider: RunningProvider, attrs: Attrs) -> None:
    objects = ("- objectName: a\n  secretPath: secret/data/app\n  secretKey: not-b64\n"
               "  encoding: base64")
    err = provider.mount_error(attrs(spc(objects)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'encoding'" in err.details() and "'a'" in err.details()


def test_no_secret_or_token_in_messages_or_logs(
    provider: RunningProvider, attrs: Attrs, vault: Vault, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    jwt = vault.signer.token("app")
    ok = provider.mount(attrs(spc(), token=jwt))
    assert files_of(ok)["pw"][1] == KNOWN_SECRET.encode()
    failures = [
        # key missing at a path that holds the known secret
        spc("- objectName: k\n  secretPath: secret/data/app\n  secretKey: nope"),
        # the known secret is not base64
        spc("- objectName: k\n  secretPath: secret/data/app\n  secretKey: password\n"
            "  encoding: base64"),
        spc("- objectName: k\n  secretPath: secret/data/app\n  secretKey: password\n"
            "  encoding: hex"),
        spc(roleName="other"),
    ]
    details = [provider.mount_error(attrs(p, token=jwt)).details() for p in failures]
    denied = provider.mount_error(attrs(spc(), sa="other", token=vault.signer.token("other")))
    details.append(denied.details())
    cached = cached_token(provider, vault)
    assert cached is not None
    vault_tokens = [cached.token]
    logs = caplog.text
    for text in [*details, logs]:
        assert KNOWN_SECRET not in text
        assert jwt not in text and jwt.split(".")[1] not in text
        for token in vault_tokens:
            assert token not in text
