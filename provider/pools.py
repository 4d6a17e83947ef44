"""One bounded thread pool per backend, so a slow backend cannot starve another.

SDK calls block a thread for as long as the backend takes to answer. With one
shared pool, a backend that answers one byte a second held every thread, and
mounts to a healthy backend queued behind it until their own deadline. Each
backend gets ``workers`` threads of its own, created on first use (threads of
a pool are themselves started only when needed); ``provider.calltime`` frees a
thread at its mount's deadline, so a pool recovers when the fault clears.
"""

from __future__ import annotations

import threading
from concurrent.futures import Executor, ThreadPoolExecutor


class BackendPools:
    """Thread pools by backend name, each of ``workers`` threads."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()
        self._closed = False

    def for_backend(self, name: str) -> Executor:
        with self._lock:
            if self._closed:
                raise RuntimeError("the provider is shutting down")
            pool = self._pools.get(name)
            if pool is None:
                pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix=name)
                self._pools[name] = pool
            return pool

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            pools = list(self._pools.values())
        for pool in pools:
            pool.shutdown(wait=wait, cancel_futures=cancel_futures)
