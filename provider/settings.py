"""Provider-wide settings of the server, from flags (and a few environment variables).

Backend-specific settings live with each backend (``provider.backends.<name>``);
this holds what the server itself needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_SOCKET_DIR = "/var/run/secrets-store-csi-providers"


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    socket_dir: str = DEFAULT_SOCKET_DIR
    name: str = "polysecret"
    also_serve: tuple[str, ...] = ()
    # Objects of one mount fetched at once; the thread pool bounds all mounts.
    max_parallel: int = 8
    # Threads for backend calls, per backend (provider.pools).
    workers: int = 32
    # Objects one SecretProviderClass may mount (provider.pipeline).
    max_objects: int = 1000
    # Mounts fetched at once per backend; 0 = 2 x workers / max_parallel
    # (provider.admission).
    max_mounts: int = 0
    # Memory bound of the plan cache (parsed classes), in MiB.
    plan_cache_mib: int = 64
    # Kubelet gives NodePublishVolume 2 minutes; answer well inside that.
    mount_timeout: float = 90.0
    grace_period: float = 20.0
    log_level: str = "info"
    log_format: str = "json"
    node_name: str = ""
    kube_api: str = ""
    kube_token_file: str = ""
    kube_ca_file: str = ""
    hmac_key_file: str = ""
    health_addr: str = ""
    metrics_addr: str = ""
    # Object cache (docs/operations.md "Rotation cache"): refreshInterval when a class sets
    # none, the largest a class may set, and the bounds of each object cache.
    refresh_default: float = 60.0
    refresh_max: float = 3600.0
    object_cache_entries: int = 10_000
    object_cache_bytes: int = 32 * 1024 * 1024
    backends: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        seen: list[str] = []
        for n in (self.name, *self.also_serve):
            if n and n not in seen:
                seen.append(n)
        return tuple(seen)
