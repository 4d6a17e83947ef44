"""Registry from backend name to a lazily imported implementation.

Each backend lives in its own package ``provider.backends.<name>``. The package
``__init__`` is cheap (flags and settings only) and exposes three functions:

* ``add_flags(group)``: its provider-level command-line flags;
* ``load_settings(args, environ) -> settings``: environment < flags;
* ``create(settings, services) -> Backend``: imports the SDK and builds it.

So the SDK of a backend (boto3, azure, hvac: 30-50 MiB each) is imported only
when the first mount that needs it arrives.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from provider.backends.base import Backend, BackendServices

BACKEND_NAMES = ("aws", "azure", "vault")


def backend_module(name: str) -> ModuleType:
    if name not in BACKEND_NAMES:
        raise KeyError(name)
    return importlib.import_module(f"provider.backends.{name}")


def add_all_flags(parser: argparse.ArgumentParser) -> None:
    for name in BACKEND_NAMES:
        group = parser.add_argument_group(f"{name} backend")
        backend_module(name).add_flags(group)


def load_all_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, Any]:
    return {name: backend_module(name).load_settings(args, environ) for name in BACKEND_NAMES}


class BackendRegistry:
    """Creates each backend once, on first use, off the event loop."""

    def __init__(self, settings: Mapping[str, Any], services: BackendServices) -> None:
        self._settings = dict(settings)
        self._services = services
        self._backends: dict[str, Backend[Any]] = {}
        self._lock = asyncio.Lock()

    async def get(self, name: str) -> Backend[Any]:
        found = self._backends.get(name)
        if found is not None:
            return found
        async with self._lock:
            existing = self._backends.get(name)
            if existing is not None:
                return existing
            module = backend_module(name)
            loop = asyncio.get_running_loop()
            # Importing an SDK takes hundreds of milliseconds: not on the loop.
            created: Backend[Any] = await loop.run_in_executor(
                None, module.create, self._settings.get(name), self._services
            )
            self._backends[name] = created
            return created

    def loaded(self) -> list[str]:
        return sorted(self._backends)

    def close(self) -> None:
        for backend in self._backends.values():
            backend.close()
        self._backends.clear()
