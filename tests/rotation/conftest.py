"""Fixtures for the rotation-cache tests: real OpenBao, moto and the Azure stand-in.

Each backend is reached through the fault proxy (or, for the HTTPS Azure
stand-in, its own request log), so the tests count reads *at the backend*.
The provider runs in-process (tests.support.running) with a refresh window
chosen per test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.faultproxy import FaultProxy
from tests.support.openbao import (
    AUTH_MOUNT,
    OpenBao,
    TokenSigner,
    add_policy,
    add_role,
    enable_jwt_auth,
    openbao_server,
)
from tests.support.running import RunningProvider, pod_attributes, settings_for

ProviderFactory = Callable[..., RunningProvider]


@dataclass
class Bao:
    server: OpenBao
    signer: TokenSigner
    proxy: FaultProxy

    def root(self) -> Any:
        return self.server.client()

    def reads(self, path: str) -> int:
        return self.proxy.count(match=lambda r: r.path == f"/v1/{path}")

    def logins(self) -> int:
        return self.proxy.count(match=lambda r: r.path == f"/v1/auth/{AUTH_MOUNT}/login")

    def attrs(self, params: dict[str, str], *, sa: str = "app", namespace: str = "default",
              pod: str = "app-0", uid: str = "", token: str | None = None,
              audience: str = "vault") -> dict[str, str]:
        jwt = token if token is not None else self.signer.token(sa, namespace, audience=audience)
        attrs = pod_attributes(
            {"vaultAddress": self.proxy.url(), **params},
            namespace=namespace, service_account=sa, pod=pod, tokens={audience: jwt},
        )
        attrs["csi.storage.k8s.io/pod.uid"] = uid or f"uid-{namespace}-{pod}"
        return attrs


@pytest.fixture(scope="module")
def bao() -> Iterator[Bao]:
    signer = TokenSigner()
    with openbao_server() as server:
        root = server.client()
        enable_jwt_auth(root, signer, AUTH_MOUNT)
        kv = root.secrets.kv.v2
        kv.create_or_update_secret(path="app", mount_point="secret",
                                   secret={"password": "first"})
        kv.create_or_update_secret(path="other", mount_point="secret",
                                   secret={"value": "others"})
        root.sys.enable_secrets_engine("pki", path="pki", config={"max_lease_ttl": "87600h"})
        root.write_data("pki/root/generate/internal",
                        data={"common_name": "rotation test root", "ttl": "8760h"})
        root.write_data("pki/roles/short", data={
            "allowed_domains": ["example.com"], "allow_subdomains": True, "max_ttl": "1h",
        })
        add_policy(root, "app-read", {
            "secret/data/app": ["read"], "pki/issue/short": ["update"],
        })
        add_policy(root, "other-read", {"secret/data/other": ["read"]})
        add_role(root, "app", ["app"], ["app-read"])
        # Same secrets role bound to another service account with another policy.
        add_role(root, "other", ["other"], ["other-read"])
        proxy = FaultProxy.in_front_of(server.address)
        try:
            yield Bao(server, signer, proxy)
        finally:
            proxy.close()


@pytest.fixture
def make_provider(tmp_path: Path) -> Iterator[ProviderFactory]:
    with contextlib.ExitStack() as stack:
        count = 0

        def make(backends: dict[str, Any], **server: Any) -> RunningProvider:
            nonlocal count
            count += 1
            sockets = tmp_path / f"s{count}"
            sockets.mkdir()
            running = RunningProvider(settings_for(sockets, backends, **server))
            stack.enter_context(running)
            return running

        yield make


@dataclass
class Aws:
    url: str  # moto itself (seeding)
    proxy: FaultProxy  # what the provider talks to

    def calls(self, operation: str) -> int:
        return self.proxy.count(match=lambda r: r.operation == operation)


@pytest.fixture(scope="module")
def aws() -> Iterator[Aws]:
    from tests.support.moto import moto_server

    with moto_server() as url:
        proxy = FaultProxy.in_front_of(url)
        try:
            yield Aws(url, proxy)
        finally:
            proxy.close()
