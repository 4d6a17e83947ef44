"""Registry from backend name to a lazily imported implementation.

Each backend is a package ``provider.backends.<name>``, found here by listing
this package: a new backend adds its package and touches no core module. The
package ``__init__`` is cheap (no SDK) and exposes the hooks of
:class:`BackendPackage`:

* ``add_flags(group)``: its provider-level command-line flags;
* ``load_settings(args, environ) -> settings``: environment < flags;
* ``claims(attributes, problems) -> bool``: whether a SecretProviderClass is
  written in its dialect (``provider.selection``), and ``DIALECT``, the keys
  that say so, for the message when no backend claims a class;
* ``SDK``: the modules its ``pip install 'polysecret[<name>]'`` extra brings;
* ``create(settings, services) -> Backend``: imports the SDK and builds it.

So a backend's SDK (botocore ~18 MiB with its first clients; Azure and Vault
speak HTTP themselves on the event loop and load far less) is imported only when the first
mount that needs it arrives.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import pkgutil
from collections.abc import Mapping
from typing import Any, Protocol, cast

from provider.backends.base import Backend, BackendServices
from provider.codes import ErrorCode
from provider.errors import InvalidRequest, Problems

BACKEND_NAMES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg))


class BackendPackage(Protocol):
    """What a backend package's ``__init__`` provides (see the module docstring)."""

    DIALECT: str
    SDK: tuple[str, ...]

    def add_flags(self, group: argparse._ArgumentGroup) -> None: ...

    def load_settings(self, args: argparse.Namespace, environ: Mapping[str, str]) -> Any: ...

    def claims(self, attributes: Mapping[str, str], problems: Problems) -> bool: ...

    def create(self, settings: Any, services: BackendServices) -> Backend[Any]: ...


def backend_module(name: str) -> BackendPackage:
    if name not in BACKEND_NAMES:
        raise KeyError(name)
    return cast(BackendPackage, importlib.import_module(f"provider.backends.{name}"))


def all_packages() -> dict[str, BackendPackage]:
    return {name: backend_module(name) for name in BACKEND_NAMES}


def installed(package: BackendPackage) -> bool:
    """Whether the backend's SDK is installed (found, not imported: that costs memory)."""
    return not missing_sdk(package)


def missing_sdk(package: BackendPackage) -> list[str]:
    """The modules of the backend's extra that cannot be found."""
    missing = []
    for sdk in package.SDK:
        try:
            found = importlib.util.find_spec(sdk) is not None
        except ImportError:  # a missing parent package of a dotted name
            found = False
        if not found:
            missing.append(sdk)
    return missing


def add_all_flags(parser: argparse.ArgumentParser) -> None:
    for name, package in all_packages().items():
        package.add_flags(parser.add_argument_group(f"{name} backend"))


def load_all_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, Any]:
    return {name: p.load_settings(args, environ) for name, p in all_packages().items()}


class BackendRegistry:
    """Creates each backend once, on first use, off the event loop.

    ``packages`` defaults to every backend package; tests register a fake
    backend by passing its package here, the way a real one is registered.
    """

    def __init__(
        self,
        settings: Mapping[str, Any],
        services: BackendServices,
        packages: Mapping[str, BackendPackage] | None = None,
    ) -> None:
        self.packages = dict(packages) if packages is not None else all_packages()
        self._settings = dict(settings)
        self._services = services
        self._backends: dict[str, Backend[Any]] = {}
        self._lock = asyncio.Lock()

    def available(self) -> list[str]:
        """The backends whose SDK is installed (logged at start-up)."""
        return [name for name, package in self.packages.items() if installed(package)]

    async def get(self, name: str) -> Backend[Any]:
        found = self._backends.get(name)
        if found is not None:
            return found
        async with self._lock:
            existing = self._backends.get(name)
            if existing is not None:
                return existing
            loop = asyncio.get_running_loop()
            # Importing an SDK takes hundreds of milliseconds: not on the loop.
            created = await loop.run_in_executor(None, self._create, name)
            self._backends[name] = created
            return created

    def _create(self, name: str) -> Backend[Any]:
        package = self.packages[name]
        # Checked first, not only on an ImportError: a backend may import part
        # of its extra lazily (AWS reads boto3's version, Azure imports
        # azure-identity for one flow only), so create() alone can succeed
        # on an install that lacks the extra.
        absent = missing_sdk(package)
        if absent:
            raise _not_installed(name, absent[0].partition(".")[0])
        try:
            return package.create(self._settings.get(name), self._services)
        except ModuleNotFoundError as exc:
            missing = (exc.name or "").partition(".")[0]
            if missing not in {sdk.partition(".")[0] for sdk in package.SDK}:
                raise  # not the extra: a broken installation, INTERNAL
            raise _not_installed(name, missing) from None

    def close(self) -> None:
        for backend in self._backends.values():
            backend.close()
        self._backends.clear()


def _not_installed(name: str, missing: str) -> InvalidRequest:
    return InvalidRequest(
        f"the {name} backend is not installed in this provider ({missing} is "
        f"missing): install it with pip install 'polysecret[{name}]' or use an "
        "image that has it",
        code=ErrorCode.BackendNotInstalled,
    )
