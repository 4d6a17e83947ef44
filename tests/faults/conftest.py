"""The fault suite's world: moto, OpenBao and the Key Vault stand-in, each behind a FaultProxy.

One real server per backend for the session, seeded once; per test, fresh
proxies in front of them and a fresh provider pointed at the proxies, so no
credential, connection or stalled thread outlives its test (closing a proxy
drops every connection it holds). The provider runs with a short mount
deadline (``MOUNT_TIMEOUT``) so a stalled backend costs seconds, not minutes.

Each backend is described by a ``Target``: how to mount its two objects, what
the files must hold, and which requests are its login (``cold``: no
credentials cached yet) and which its reads (``warm``: a mount already
succeeded and its STS credentials / Vault token / Azure token are cached).
"""

from __future__ import annotations

import contextlib
import shutil
import ssl
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from provider.backends.aws import AwsSettings
from provider.backends.vault import VaultSettings
from tests.support.azure_standin import AUDIENCE, TENANT, WI_CLIENT, AzureWorld, azure_world
from tests.support.faultproxy import FaultProxy, Match, Request
from tests.support.moto import REGION, ROLE_ARN, moto_server, seed_client
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
from tests.support.tokens import pod_token

MOUNT_TIMEOUT = 2.5
STS_TOKEN = pod_token("sts.amazonaws.com")
AZURE_POD_TOKEN = pod_token(AUDIENCE)
VALUES = {"one": "first-value-7c1f", "two": "second-value-91ab"}


@dataclass
class Target:
    """One backend behind its proxies, and how a pod mounts from it."""

    name: str
    settings: Any
    attributes: Callable[[], dict[str, str]]
    files: dict[str, bytes]
    login: FaultProxy  # the proxy the login / token request goes through
    reads: FaultProxy  # the proxy the object reads go through
    is_login: Match | None  # selects the login requests on `login` (None: all)
    is_read: Match | None
    secrets: list[str] = field(default_factory=list)  # never in a message

    @property
    def proxies(self) -> list[FaultProxy]:
        return list(dict.fromkeys([self.login, self.reads]))


# -- the servers (once per session) -------------------------------------------


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        sm = seed_client(url, "secretsmanager")
        for name, value in VALUES.items():
            sm.create_secret(Name=f"faults/{name}", SecretString=value)
        yield url


@dataclass
class Bao:
    server: OpenBao
    signer: TokenSigner


@pytest.fixture(scope="session")
def bao() -> Iterator[Bao]:
    signer = TokenSigner()
    with openbao_server() as server:
        root = server.client()
        enable_jwt_auth(root, signer, AUTH_MOUNT)
        for name, value in VALUES.items():
            root.secrets.kv.v2.create_or_update_secret(
                path=f"faults/{name}", mount_point="secret", secret={"value": value}
            )
        add_policy(root, "faults", {"secret/data/faults/*": ["read"]})
        add_role(root, "faults", ["app"], ["faults"])
        yield Bao(server, signer)


@pytest.fixture(scope="session")
def azure() -> Iterator[AzureWorld]:
    with azure_world() as world:
        world.tokens.federated[WI_CLIENT] = AZURE_POD_TOKEN
        for name, value in VALUES.items():
            world.vault.set_secret(name, value)
        yield world


# -- per test: proxies and a provider ------------------------------------------


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].rstrip("/"))


def is_sts(r: Request) -> bool:
    return b"AssumeRoleWithWebIdentity" in r.body


def is_get_secret_value(r: Request) -> bool:
    return r.header("x-amz-target").endswith("GetSecretValue")


def is_vault_login(r: Request) -> bool:
    return r.target.startswith("/v1/auth/")


def is_vault_read(r: Request) -> bool:
    return r.target.startswith("/v1/secret/")


@pytest.fixture
def proxies() -> Iterator[Callable[..., FaultProxy]]:
    made: list[FaultProxy] = []

    def make(port: int, **kw: Any) -> FaultProxy:
        proxy = FaultProxy(port, **kw)
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()


def aws_target(moto_url: str, proxies: Callable[..., FaultProxy]) -> Target:
    proxy = proxies(_port(moto_url))
    objects = "\n".join(
        f"- objectName: faults/{n}\n  objectType: secretsmanager\n  objectAlias: {n}"
        for n in VALUES
    )
    return Target(
        name="aws",
        settings=AwsSettings(region=REGION, endpoint_url=proxy.url()),
        attributes=lambda: pod_attributes(
            {"objects": objects, "roleArn": ROLE_ARN},
            tokens={"sts.amazonaws.com": STS_TOKEN},
        ),
        files={n: v.encode() for n, v in VALUES.items()},
        login=proxy,
        reads=proxy,
        is_login=is_sts,
        is_read=is_get_secret_value,
        secrets=[STS_TOKEN, *VALUES.values()],
    )


def vault_target(bao: Bao, proxies: Callable[..., FaultProxy]) -> Target:
    proxy = proxies(_port(bao.server.address))
    objects = "\n".join(
        f"- objectName: {n}\n  secretPath: secret/data/faults/{n}\n  secretKey: value"
        for n in VALUES
    )
    token = bao.signer.token("app")
    return Target(
        name="vault",
        settings=VaultSettings(address=proxy.url()),
        attributes=lambda: pod_attributes(
            {"roleName": "faults", "vaultAddress": proxy.url(), "objects": objects},
            tokens={"vault": token},
        ),
        files={n: v.encode() for n, v in VALUES.items()},
        login=proxy,
        reads=proxy,
        is_login=is_vault_login,
        is_read=is_vault_read,
        secrets=[token, *VALUES.values()],
    )


def azure_target(
    world: AzureWorld, proxies: Callable[..., FaultProxy], stack: contextlib.ExitStack
) -> Target:
    """Both Azure servers are HTTPS: the proxies terminate TLS with the stand-in's
    certificate (names 127.0.0.1), so the provider still verifies it with the test CA."""
    upstream = ssl.create_default_context(cafile=str(world.pki.ca_file))
    tokens = proxies(
        _port(world.tokens.url), server_ssl=world.pki.server_context(), upstream_ssl=upstream
    )
    vault = proxies(
        _port(world.vault.url), server_ssl=world.pki.server_context(), upstream_ssl=upstream
    )
    # The stand-in's OpenID discovery names its own URL as the token endpoint:
    # point it at the proxy for this test, or the token request would go around it.
    real = world.tokens.url
    world.tokens.url = tokens.url()
    stack.callback(setattr, world.tokens, "url", real)
    objects = "array:\n" + "".join(
        f"  - |\n    objectName: {n}\n    objectType: secret\n" for n in VALUES
    )
    return Target(
        name="azure",
        settings=world.settings(authority_host=tokens.url(), keyvault_endpoint=vault.url() + "/"),
        attributes=lambda: pod_attributes(
            {
                "keyvaultName": "faultvault",
                "tenantID": TENANT,
                "clientID": WI_CLIENT,
                "objects": objects,
            },
            tokens={AUDIENCE: AZURE_POD_TOKEN},
        ),
        files={n: v.encode() for n, v in VALUES.items()},
        login=tokens,
        reads=vault,
        is_login=None,
        is_read=None,
        secrets=[AZURE_POD_TOKEN, *VALUES.values()],
    )


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    # Short: a Unix socket path must fit in 108 bytes; pytest's tmp_path may not.
    path = Path(tempfile.mkdtemp(prefix="psf-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def make_provider(socket_dir: Path) -> Iterator[Callable[..., RunningProvider]]:
    started: list[RunningProvider] = []

    def make(target: Target, **server: Any) -> RunningProvider:
        sub = socket_dir / str(len(started))
        sub.mkdir()
        options: dict[str, Any] = {"mount_timeout": MOUNT_TIMEOUT, "health_addr": "127.0.0.1:0"}
        options.update(server)
        settings = settings_for(sub, {target.name: target.settings}, **options)
        running = RunningProvider(replace(settings, grace_period=1.0))
        started.append(running)
        return running.__enter__()

    yield make
    for running in started:
        running.stop()


@pytest.fixture
def target_of(
    request: pytest.FixtureRequest, proxies: Callable[..., FaultProxy]
) -> Iterator[Callable[[str], Target]]:
    """``target_of("aws" | "vault" | "azure")``: that backend behind fresh proxies.

    The session servers are asked for lazily, so a run of one backend's cases
    starts only that backend.
    """
    with contextlib.ExitStack() as stack:

        def make(name: str) -> Target:
            if name == "aws":
                return aws_target(request.getfixturevalue("moto_url"), proxies)
            if name == "vault":
                return vault_target(request.getfixturevalue("bao"), proxies)
            return azure_target(request.getfixturevalue("azure"), proxies, stack)

        yield make
