"""The three backends, set up to trust the e2e cluster's own ServiceAccount tokens.

The pods' tokens here are real: kubelet requests them from the API server for
each audience of our CSIDriver object. So each backend checks them against the
cluster's service-account key, as the real services would:

- OpenBao: jwt auth (the Vault dialect's default mount ``kubernetes``) with the
  cluster's public key and issuer; a ``kubernetes`` auth mount that calls the
  API server's TokenReview is added by the scenario that needs it.
- The Azure stand-in's token service: a federated credential accepts a pod
  token only when it is signed by the cluster, for api://AzureADTokenExchange,
  and names the ServiceAccount the credential is for.
- moto's STS does not check web identity tokens at all; the AWS deny proxy of
  the conformance suite plays the IAM policy that moto lacks.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from tests.support.azure_standin import (
    AUDIENCE,
    WI_CLIENT,
    AzureWorld,
    KeyVaultEmulator,
    Response,
    TestPki,
    TokenService,
    serve_https,
)
from tests.support.openbao import AUTH_MOUNT, OpenBao, add_policy, add_role

VAULT_ROLE = "conformance"  # tests.conformance.backends.VAULT_ROLE
VAULT_POLICY = "conformance-read"


@dataclass
class KubeTokenService(TokenService):
    """Azure AD whose federated credentials trust the e2e cluster's tokens."""

    issuer: str = ""
    public_key: bytes = b""
    # client id -> the ServiceAccount subject its federated credential names
    subjects: dict[str, str] = field(default_factory=dict)
    verified: list[str] = field(default_factory=list)  # subjects of accepted tokens

    def _token(self, tenant: str, form: dict[str, str]) -> Response:
        client = form.get("client_id", "")
        assertion = form.get("client_assertion")
        if assertion is not None and client in self.subjects:
            try:
                claims = jwt.decode(
                    assertion, self.public_key, algorithms=["RS256"],
                    audience=AUDIENCE, issuer=self.issuer,
                )  # fmt: skip
            except jwt.PyJWTError:
                claims = {}
            if claims.get("sub") == self.subjects[client]:
                with self._lock:
                    self.verified.append(str(claims["sub"]))
                # The stand-in compares the assertion with its federated record.
                self.federated[client] = assertion
            else:
                self.federated.pop(client, None)
        return super()._token(tenant, form)


@contextlib.contextmanager
def azure_world(issuer: str, public_key: bytes, subject: str) -> Iterator[AzureWorld]:
    """tests.support.azure_standin.azure_world, with KubeTokenService."""
    with tempfile.TemporaryDirectory(prefix="polysecret-e2e-azure-") as tmp:
        pki = TestPki(Path(tmp))
        tokens = KubeTokenService(issuer=issuer, public_key=public_key,
                                  subjects={WI_CLIENT: subject})  # fmt: skip
        vault = KeyVaultEmulator(tokens)
        with serve_https(tokens, pki) as token_url, serve_https(vault, pki) as vault_url:
            tokens.url = token_url
            vault.url = vault_url
            yield AzureWorld(pki, tokens, vault)


def seed_vault_jwt(bao: OpenBao, issuer: str, public_key: bytes,
                   service_accounts: list[str]) -> None:  # fmt: skip
    """jwt auth at the dialect's default mount, trusting the cluster's key."""
    root = bao.client()
    root.sys.enable_auth_method("jwt", path=AUTH_MOUNT)
    root.write_data(
        f"auth/{AUTH_MOUNT}/config",
        data={"jwt_validation_pubkeys": [public_key.decode()], "bound_issuer": issuer},
    )
    add_policy(root, VAULT_POLICY, {"secret/data/conformance/*": ["read"]})
    add_role(root, VAULT_ROLE, service_accounts, [VAULT_POLICY])


def enable_vault_kubernetes_auth(bao: OpenBao, mount: str, *, api_url: str, ca_pem: str,
                                 reviewer_jwt: str, role: str, service_account: str,
                                 namespace: str = "default") -> Any:  # fmt: skip
    """The kubernetes auth method: OpenBao calls the API server's TokenReview."""
    root = bao.client()
    root.sys.enable_auth_method("kubernetes", path=mount)
    root.write_data(
        f"auth/{mount}/config",
        data={"kubernetes_host": api_url, "kubernetes_ca_cert": ca_pem,
              "token_reviewer_jwt": reviewer_jwt, "disable_local_ca_jwt": True},
    )  # fmt: skip
    return root.write_data(
        f"auth/{mount}/role/{role}",
        data={
            "bound_service_account_names": [service_account],
            "bound_service_account_namespaces": [namespace],
            # The pod's token is for audience "vault" (our CSIDriver tokenRequests):
            # TokenReview must be asked for that audience.
            "audience": "vault",
            "token_policies": [VAULT_POLICY],
            "token_ttl": "1h",
        },
    )
