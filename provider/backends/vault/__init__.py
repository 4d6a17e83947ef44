"""vault backend: placeholder until the backend lands (flags, settings, create)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from provider.errors import InvalidParameters


def add_flags(group: argparse._ArgumentGroup) -> None:
    return None


def load_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> Any:
    return None


def create(settings: Any, services: Any) -> Any:
    raise InvalidParameters(["the vault backend is not available in this build"])
