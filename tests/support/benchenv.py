"""What a backend offers the benchmark (bench/) and the demo: a seeded real server.

Each backend's test support module provides
``bench_env(n_objects: int) -> contextmanager[BenchEnv]`` that starts its real
server (moto, OpenBao, a local Key Vault stand-in), seeds ``n_objects`` objects and describes
how to mount them through the provider and how to fetch the same objects one
after another with the plain SDK (the baseline the benchmark compares against),
and the flags bench/gobaseline needs to do the same with the Go peer's SDK.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class BenchEnv:
    backend: str
    # provider.settings.ServerSettings.backends entry for this backend
    settings: Any
    # SecretProviderClass parameters (strings) mounting the n objects
    parameters: dict[str, str]
    # audience -> token the pod would have
    tokens: dict[str, str] = field(default_factory=dict, repr=False)
    # nodePublishSecretRef data, if the backend needs it
    secrets: dict[str, str] | None = None
    # fetch the same n objects sequentially with the plain SDK, as a naive
    # provider would (fresh auth included, as the peers do per mount)
    sequential_fetch: Callable[[], None] | None = None
    environ: dict[str, str] = field(default_factory=dict)
    # bench/gobaseline's backend flags ("-addr": address, ...; not -backend,
    # -objects, -mounts) reaching the same server and objects, tokens included
    go_baseline_args: dict[str, str] = field(default_factory=dict, repr=False)
