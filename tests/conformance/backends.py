"""One example SecretProviderClass per backend, seeded into that backend's real test server.

Each ``*_scenario`` function seeds fresh objects under a unique prefix (so the
tests can change them without stepping on each other) and returns a
Scenario: the SPC YAML, shaped like daemonset/examples/<backend>-
secretproviderclass.yaml but pointing at the local server, the pod identity
that mounts it, the files and object versions the volume must hold (known
independently of the provider: values we seeded, version ids the server
gave us), a ``rotate`` that changes a secret in the backend, and SPCs that
add one denied and one missing object.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.support.azure_standin import AUDIENCE, TENANT, WI_CLIENT, AzureWorld, make_chain
from tests.support.moto import REGION, ROLE_ARN
from tests.support.openbao import AUTH_MOUNT, OpenBao, TokenSigner, add_policy, add_role
from tests.support.tokens import pod_token

Files = dict[str, tuple[int, bytes]]
Versions = dict[str, str]

SERVICE_ACCOUNT = "app"
POD_NAME = "app-0"
NAMESPACE = "default"
POD_UID = "9d7c7e1e-0000-4000-8000-00000000c0f0"
STS_TOKEN = pod_token("sts.amazonaws.com")
AZURE_POD_TOKEN = pod_token("api://AzureADTokenExchange")
VAULT_ROLE = "conformance"
BINARY = b"\x00\xffP12\x10binary\x80\x00tail"


@dataclass
class Failing:
    """An SPC holding the scenario's objects plus one that must fail the mount."""

    spc_yaml: str
    object_name: str  # the object the error must name
    grpc_text: str  # the provider's gRPC status text, "rpc error: code = ... desc = ..."


@dataclass
class Scenario:
    backend: str
    spc_name: str
    spc_yaml: str
    tokens: dict[str, str]  # audience -> pod token
    files: Files  # what the volume must hold
    versions: Versions  # what the driver must record
    rotate: Callable[[], tuple[Files, Versions]]  # change the backend; the new expectation
    denied: Failing
    missing: Failing
    known_secrets: list[bytes] = field(default_factory=list)  # never in any error text

    def never_shown(self) -> list[bytes]:
        """Values that must not appear in an error: secrets and the pod's tokens."""
        return [s for s in self.known_secrets if len(s) >= 6] + [
            t.encode() for t in self.tokens.values()
        ]


def prefix() -> str:
    return "c" + secrets.token_hex(4)


def _spc(name: str, parameters: dict[str, str]) -> str:
    lines = [
        "apiVersion: secrets-store.csi.x-k8s.io/v1",
        "kind: SecretProviderClass",
        "metadata:",
        f"  name: {name}",
        f"  namespace: {NAMESPACE}",
        "spec:",
        "  provider: polysecret",
        "  parameters:",
    ]
    for key, value in parameters.items():
        if "\n" in value:
            lines.append(f"    {key}: |")
            lines.extend(f"      {line}" for line in value.rstrip("\n").split("\n"))
        else:
            lines.append(f"    {key}: {json.dumps(value)}")
    return "\n".join(lines) + "\n"


# -- AWS: Secrets Manager and SSM on moto -------------------------------------------


def aws_scenario(sm: Any, ssm: Any, deny: set[str]) -> Scenario:
    """daemonset/examples/aws-secretproviderclass.yaml, plus a binary secret.

    Default path translation: ``/`` in a name becomes ``_`` in the file name.
    ``deny`` is the set of secret names the region proxy answers
    AccessDeniedException for (moto itself enforces no IAM policy).
    """
    p = prefix()
    password = f"pw-{secrets.token_hex(8)}"
    creds = json.dumps({"username": "app-user", "password": password})
    token_value = f"api-token-{secrets.token_hex(8)}"
    db = sm.create_secret(Name=f"{p}/db/credentials", SecretString=creds)["VersionId"]
    api = sm.create_secret(Name=f"{p}/api/token", SecretString=token_value)["VersionId"]
    keystore = sm.create_secret(Name=f"{p}/keystore", SecretBinary=BINARY)["VersionId"]
    ssm.put_parameter(Name=f"/{p}/app/feature-flags", Value="flags=on", Type="String")
    sm.create_secret(Name=f"{p}/denied", SecretString="denied-secret-value")
    deny.add(f"{p}/denied")

    objects = f"""- objectName: {p}/db/credentials
  objectType: secretsmanager
  objectAlias: db-credentials.json
  jmesPath:
    - path: username
      objectAlias: db-username
    - path: password
      objectAlias: db-password
      filePermission: "0400"
- objectName: {p}/api/token
  objectType: secretsmanager
  objectVersionLabel: AWSCURRENT
- objectName: {p}/keystore
  objectType: secretsmanager
  objectAlias: keystore.p12
  filePermission: "0600"
- objectName: /{p}/app/feature-flags
  objectType: ssmparameter
"""
    params = {"region": REGION, "roleArn": ROLE_ARN}
    api_file, flags_file = f"{p}_api_token", f"_{p}_app_feature-flags"
    files: Files = {
        "db-credentials.json": (0o644, creds.encode()),
        "db-username": (0o644, b"app-user"),
        "db-password": (0o400, password.encode()),
        api_file: (0o644, token_value.encode()),
        "keystore.p12": (0o600, BINARY),
        flags_file: (0o644, b"flags=on"),
    }
    versions: Versions = {
        "db-credentials.json": db,
        "db-username": db,
        "db-password": db,
        api_file: api,
        "keystore.p12": keystore,
        flags_file: "1",
    }
    known = [password.encode(), token_value.encode(), creds.encode(), b"denied-secret-value"]

    def rotate() -> tuple[Files, Versions]:
        new_value = f"api-token-{secrets.token_hex(8)}"
        known.append(new_value.encode())
        new_api = sm.put_secret_value(SecretId=f"{p}/api/token", SecretString=new_value)
        ssm.put_parameter(
            Name=f"/{p}/app/feature-flags", Value="flags=off", Type="String", Overwrite=True
        )
        new_files = dict(files, **{api_file: (0o644, new_value.encode())})
        new_files[flags_file] = (0o644, b"flags=off")
        new_versions = dict(versions, **{api_file: new_api["VersionId"], flags_file: "2"})
        return new_files, new_versions

    def failing(name: str, text: str) -> Failing:
        extra = f"- objectName: {name}\n  objectType: secretsmanager\n  objectAlias: extra\n"
        return Failing(_spc(f"{p}-aws", {**params, "objects": objects + extra}), name, text)

    return Scenario(
        backend="aws",
        spc_name=f"{p}-aws",
        spc_yaml=_spc(f"{p}-aws", {**params, "objects": objects}),
        tokens={"sts.amazonaws.com": STS_TOKEN},
        files=files,
        versions=versions,
        rotate=rotate,
        denied=failing(
            f"{p}/denied",
            f"code = PermissionDenied desc = AccessDenied: object '{p}/denied' "
            f"(secret '{p}/denied' in {REGION}): GetSecretValue failed with "
            "AccessDeniedException: User: arn:aws:sts::111122223333:assumed-role/app-role/"
            "polysecret is not authorized to perform: secretsmanager:GetSecretValue on "
            f"resource: {p}/denied because no identity-based policy allows the "
            "secretsmanager:GetSecretValue action",
        ),
        missing=failing(
            f"{p}/missing",
            f"code = NotFound desc = ObjectNotFound: object '{p}/missing' "
            f"(secret '{p}/missing' in {REGION}): GetSecretValue failed with "
            "ResourceNotFoundException: Secrets Manager can't find the specified secret.",
        ),
        known_secrets=known,
    )


# -- Vault: KV v2 on a real OpenBao ---------------------------------------------------


def seed_vault(bao: OpenBao, signer: TokenSigner) -> None:
    """A jwt auth mount and a role that may read secret/data/conformance/* only."""
    from tests.support.openbao import enable_jwt_auth

    root = bao.client()
    enable_jwt_auth(root, signer, AUTH_MOUNT)
    add_policy(root, "conformance-read", {"secret/data/conformance/*": ["read"]})
    add_role(root, VAULT_ROLE, [SERVICE_ACCOUNT], ["conformance-read"])


def vault_scenario(bao: OpenBao, signer: TokenSigner) -> Scenario:
    """daemonset/examples/vault-secretproviderclass.yaml's KV objects, on KV v2.

    (The example's whole-response object is left out: Vault's answer carries a
    fresh request_id per read, so two mounts never write the same bytes.)
    """
    p = prefix()
    kv2 = bao.client().secrets.kv.v2
    password = f"pw-{secrets.token_hex(8)}"
    api_key = f"key-{secrets.token_hex(8)}"
    base = f"conformance/{p}"
    kv2.create_or_update_secret(
        path=f"{base}/db", mount_point="secret",
        secret={"username": "app-user", "password": password},
    )  # fmt: skip
    for i in range(3):  # version 3 is the pinned one
        kv2.create_or_update_secret(
            path=f"{base}/api", mount_point="secret", secret={"key": f"{api_key}-{i + 1}"}
        )
    kv2.create_or_update_secret(
        path=f"{base}/keystore", mount_point="secret",
        secret={"p12": base64.b64encode(BINARY).decode()},
    )  # fmt: skip
    kv2.create_or_update_secret(
        path=f"forbidden/{p}", mount_point="secret", secret={"value": "forbidden-value"}
    )
    objects = f"""- objectName: db-password
  secretPath: secret/data/{base}/db
  secretKey: password
  filePermission: 0400
- objectName: db/username
  secretPath: secret/data/{base}/db
  secretKey: username
- objectName: api-key
  secretPath: secret/data/{base}/api?version=3
  secretKey: key
- objectName: keystore.p12
  secretPath: secret/data/{base}/keystore
  secretKey: p12
  encoding: base64
  filePermission: 0640
"""
    params = {"roleName": VAULT_ROLE, "vaultAddress": bao.address}
    files: Files = {
        "db-password": (0o400, password.encode()),
        "db/username": (0o644, b"app-user"),
        "api-key": (0o644, f"{api_key}-3".encode()),
        "keystore.p12": (0o640, BINARY),
    }
    versions: Versions = {"db-password": "1", "db/username": "1", "api-key": "3",
                          "keystore.p12": "1"}  # fmt: skip
    known = [password.encode(), f"{api_key}-3".encode(), b"forbidden-value"]

    def rotate() -> tuple[Files, Versions]:
        new_password = f"pw-{secrets.token_hex(8)}"
        known.append(new_password.encode())
        kv2.create_or_update_secret(
            path=f"{base}/db", mount_point="secret",
            secret={"username": "app-user", "password": new_password},
        )  # fmt: skip
        new_files = dict(files, **{"db-password": (0o400, new_password.encode())})
        return new_files, dict(versions, **{"db-password": "2", "db/username": "2"})

    def failing(name: str, path: str, text: str) -> Failing:
        extra = f"- objectName: {name}\n  secretPath: {path}\n  secretKey: value\n"
        return Failing(_spc(f"{p}-vault", {**params, "objects": objects + extra}), name, text)

    return Scenario(
        backend="vault",
        spc_name=f"{p}-vault",
        spc_yaml=_spc(f"{p}-vault", {**params, "objects": objects}),
        tokens={"vault": signer.token(SERVICE_ACCOUNT, NAMESPACE)},
        files=files,
        versions=versions,
        rotate=rotate,
        denied=failing(
            "denied", f"secret/data/forbidden/{p}",
            "code = PermissionDenied desc = AccessDenied: object 'denied' "
            f"(secretPath 'secret/data/forbidden/{p}', role '{VAULT_ROLE}'): "
            f"Vault denied GET secret/data/forbidden/{p}: 1 error occurred: * permission denied",
        ),
        missing=failing(
            "missing", f"secret/data/{base}/missing",
            "code = NotFound desc = ObjectNotFound: object 'missing' "
            f"(secretPath 'secret/data/{base}/missing', role '{VAULT_ROLE}'): "
            "nothing at this path in Vault",
        ),
        known_secrets=known,
    )  # fmt: skip


# -- Azure: the HTTPS Key Vault stand-in ---------------------------------------------


def _pem(data: Any) -> bytes:
    return bytes(data.public_bytes(serialization.Encoding.PEM))


def azure_scenario(world: AzureWorld, deny: set[str]) -> Scenario:
    """daemonset/examples/azure-secretproviderclass.yaml, against the stand-in vault.

    ``deny`` holds object names the vault answers 403 Forbidden for (see
    conftest: a per-name access check in front of the stand-in).
    """
    p = prefix()
    vault = world.vault
    world.tokens.federated[WI_CLIENT] = AZURE_POD_TOKEN
    password = f"pw-{secrets.token_hex(8)}"
    db = vault.set_secret(f"{p}-db-password", password)
    key_version, public = vault.create_key(f"{p}-signing-key", "RSA")
    chain = make_chain("app.default.svc")
    pfx = pkcs12.serialize_key_and_certificates(
        b"app", chain.key, chain.leaf, [chain.root, chain.intermediate],
        serialization.NoEncryption(),
    )  # fmt: skip
    tls = vault.import_certificate(f"{p}-app-tls", pfx=pfx)
    api_values = [f"api-{i}-{secrets.token_hex(4)}" for i in range(3)]
    api = [vault.set_secret(f"{p}-api-key", value) for value in api_values]
    vault.set_secret(f"{p}-denied", "denied-secret-value")
    deny.add(f"{p}-denied")

    def item(text: str) -> str:
        return "  - |\n" + "".join(f"    {line}\n" for line in text.strip().splitlines())

    items = [
        f'objectName: {p}-db-password\nobjectType: secret\nfilePermission: "0400"',
        f"objectName: {p}-signing-key\nobjectType: key\nobjectAlias: keys/signing.pub",
        f"objectName: {p}-app-tls\nobjectType: secret\nobjectAlias: tls/tls.pem",
        f"objectName: {p}-app-tls\nobjectType: cert\nobjectAlias: tls/tls.crt",
        f"objectName: {p}-app-tls\nobjectType: secret\nobjectFormat: pfx\n"
        'objectEncoding: base64\nobjectAlias: tls/tls.pfx\nfilePermission: "0600"',
        f"objectName: {p}-api-key\nobjectType: secret\nobjectVersionHistory: 2",
    ]
    params = {"keyvaultName": "app-kv", "tenantID": TENANT, "clientID": WI_CLIENT}
    key_pem = chain.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )  # fmt: skip
    files: Files = {
        f"{p}-db-password": (0o400, password.encode()),
        "keys/signing.pub": (
            0o644,
            public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        ),
        "tls/tls.pem": (0o644, key_pem + _pem(chain.leaf) + _pem(chain.intermediate)
                        + _pem(chain.root)),
        "tls/tls.crt": (0o644, _pem(chain.leaf)),
        "tls/tls.pfx": (0o600, pfx),
        f"{p}-api-key/0": (0o644, api_values[2].encode()),
        f"{p}-api-key/1": (0o644, api_values[1].encode()),
    }  # fmt: skip
    versions: Versions = {
        f"secret/{p}-db-password": db,
        f"key/{p}-signing-key": key_version,
        f"secret/{p}-app-tls": tls,
        f"cert/{p}-app-tls": tls,
        f"secret/{p}-api-key/0": api[2],
        f"secret/{p}-api-key/1": api[1],
    }
    known = [password.encode(), *(v.encode() for v in api_values), b"denied-secret-value"]

    def rotate() -> tuple[Files, Versions]:
        new_password = f"pw-{secrets.token_hex(8)}"
        known.append(new_password.encode())
        new = vault.set_secret(f"{p}-db-password", new_password)
        new_files = dict(files, **{f"{p}-db-password": (0o400, new_password.encode())})
        return new_files, dict(versions, **{f"secret/{p}-db-password": new})

    identity = f"workload identity (clientID '{WI_CLIENT}', tenant '{TENANT}')"

    def objects(extra: list[str]) -> str:
        return "array:\n" + "".join(item(i) for i in items + extra)

    def failing(name: str, text: str) -> Failing:
        extra = [f"objectName: {name}\nobjectType: secret"]
        return Failing(_spc(f"{p}-azure", {**params, "objects": objects(extra)}), name, text)

    return Scenario(
        backend="azure",
        spc_name=f"{p}-azure",
        spc_yaml=_spc(f"{p}-azure", {**params, "objects": objects([])}),
        tokens={AUDIENCE: AZURE_POD_TOKEN},
        files=files,
        versions=versions,
        rotate=rotate,
        denied=failing(
            f"{p}-denied",
            f"code = PermissionDenied desc = AccessDenied: object '{p}-denied' (objectType "
            f"secret) in vault 'app-kv' as {identity}: GetSecret failed (HTTP 403 Forbidden): "
            "Caller is not authorized to perform action on resource. "
            f"Caller: appid={WI_CLIENT}; Action: "
            f"'Microsoft.KeyVault/vaults/secrets/getSecret/action'; Resource: '{p}-denied'",
        ),
        missing=failing(
            f"{p}-missing",
            f"code = NotFound desc = ObjectNotFound: object '{p}-missing' (objectType secret) "
            f"in vault 'app-kv' as {identity}: GetSecret failed (HTTP 404 SecretNotFound): "
            f"A secret with (name/id) {p}-missing was not found in this key vault.",
        ),
        known_secrets=known,
    )
