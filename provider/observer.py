"""What one Mount leaves behind: one log line, its metrics, and its gRPC status.

The server is a wire adapter; everything a mount tells operators is written
here, in one place, when it ends: a log line (pod, class, socket, backend,
objects, duration, outcome, the error) and the metrics hooks
(:class:`MountMetrics`, implemented by :class:`provider.metrics.Metrics`).
A failure becomes its status here too (``provider.status``), redacted with
the request's own secrets, so the log and the pod event say the same thing.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

import grpc

from provider.errors import InvalidParameters
from provider.redaction import redact
from provider.request import MountRequest
from provider.status import error_code, to_status

log = logging.getLogger("provider.server")

SPC_ATTRIBUTE = "secretProviderClass"


class MountMetrics(Protocol):
    """Told about every Mount (provider.metrics.Metrics)."""

    def mount_started(self) -> None: ...

    def mount_finished(self, backend: str, outcome: str, seconds: float) -> None: ...


class NoMetrics:
    def mount_started(self) -> None:
        return None

    def mount_finished(self, backend: str, outcome: str, seconds: float) -> None:
        return None


class MountRecord:
    """One Mount from its arrival to its answer; ends once, as ok, failed or cancelled.

    The server fills in what it learns on the way (the parsed ``request``, the
    ``backend`` once chosen), so a failed mount's line still names both.
    """

    def __init__(self, metrics: MountMetrics, socket: str) -> None:
        self._metrics = metrics
        self._socket = socket
        self._started = time.perf_counter()
        self.request: MountRequest | None = None
        self.backend = "unknown"
        metrics.mount_started()

    def succeeded(self, objects: int) -> None:
        self._finish("ok", objects=objects)

    def cancelled(self) -> None:
        # The client went away or shutdown's grace period ran out: still one
        # log line and a finished mount (the in-flight gauge must drop).
        self._finish("Cancelled", message="the call was cancelled")

    def failed(self, exc: Exception) -> tuple[grpc.StatusCode, str]:
        """Log and count the failure; the status the caller answers with."""
        secrets = self.request.secret_values() if self.request is not None else ()
        code, message = to_status(exc, secrets)
        # The status message is bounded; the log keeps every problem.
        problems = (
            [redact(p, secrets) for p in exc.problems] if isinstance(exc, InvalidParameters) else []
        )
        self._finish(error_code(exc), message=message, problems=problems)
        if code == grpc.StatusCode.INTERNAL:
            log.error("unexpected error in Mount", exc_info=exc)
        return code, message

    def _finish(
        self,
        outcome: str,
        *,
        objects: int | None = None,
        message: str = "",
        problems: list[str] | None = None,
    ) -> None:
        seconds = time.perf_counter() - self._started
        request = self.request
        pod = request.pod if request is not None else None
        ok = outcome == "ok"
        log.log(
            logging.INFO if ok else logging.WARNING,
            "mount succeeded" if ok else "mount failed",
            extra={
                "pod": pod.describe() if pod else "",
                "service_account": pod.service_account if pod else "",
                "secret_provider_class": request.attributes.get(SPC_ATTRIBUTE, "")
                if request
                else "",
                "socket": self._socket,
                "backend": self.backend,
                "objects": objects,
                "duration_ms": round(seconds * 1000, 2),
                "outcome": outcome,
                **({"error": message} if message else {}),
                **({"problems": problems} if problems else {}),
            },
        )
        self._metrics.mount_finished(self.backend, outcome, seconds)
