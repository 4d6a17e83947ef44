"""provider.backends: found by package, created once, a clear error without their extra."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc
import pytest

from provider.backends import BACKEND_NAMES, BackendRegistry, all_packages
from provider.backends.base import BackendServices
from provider.errors import InvalidRequest
from provider.status import to_status
from tests.support import fakebackend


def test_every_backend_package_is_found() -> None:
    assert BACKEND_NAMES == ("aws", "azure", "vault")
    for name, package in all_packages().items():
        assert package.SDK and package.DIALECT, name


def test_a_backend_is_created_once() -> None:
    async def main() -> None:
        registry = BackendRegistry({}, BackendServices(), packages={"fake": fakebackend})
        first, second = await asyncio.gather(registry.get("fake"), registry.get("fake"))
        assert first is second
        assert registry.available() == ["fake"]

    asyncio.run(main())


def _without_sdk(monkeypatch: pytest.MonkeyPatch, sdk: str, backend: str) -> None:
    # As on an install without the extra: importing the SDK fails, and so do
    # the backend's modules (none imported yet; its package __init__ is cheap).
    monkeypatch.setitem(sys.modules, sdk, None)
    # Put back as they were afterwards: in sys.modules and as package attributes.
    for module in [m for m in sys.modules if m.startswith(f"provider.backends.{backend}.")]:
        parent, _, child = module.rpartition(".")
        monkeypatch.delattr(sys.modules[parent], child, raising=False)
        monkeypatch.delitem(sys.modules, module)


@pytest.mark.parametrize(
    ("name", "sdk", "out"),
    [
        ("aws", "boto3", {"aws"}),
        # Vault and Azure both speak HTTP through provider.backends.http1.
        ("vault", "httptools", {"vault", "azure"}),
        ("azure", "azure.identity", {"azure"}),
    ],
)
def test_a_backend_without_its_extra_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, name: str, sdk: str, out: set[str]
) -> None:
    _without_sdk(monkeypatch, sdk, name)
    registry = BackendRegistry({}, BackendServices())
    assert name not in registry.available()
    assert set(registry.available()) == set(BACKEND_NAMES) - out
    with pytest.raises(InvalidRequest) as info:
        asyncio.run(registry.get(name))
    assert info.value.code == "BackendNotInstalled"
    assert f"pip install 'polysecret[{name}]'" in info.value.message
    code, message = to_status(info.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message.startswith("BackendNotInstalled: ")


class _Broken:
    """A backend package whose own code fails to import: a bug, not a missing extra."""

    DIALECT = "broken"
    SDK = ("json",)  # installed: what is missing is the package's own module

    @staticmethod
    def create(settings: Any, services: Any) -> Any:
        raise ModuleNotFoundError("No module named 'provider.typo'", name="provider.typo")


def test_a_missing_module_that_is_not_the_sdk_stays_a_bug() -> None:
    registry = BackendRegistry({}, BackendServices(), packages={"broken": _Broken()})  # type: ignore[dict-item]
    with pytest.raises(ModuleNotFoundError):
        asyncio.run(registry.get("broken"))
