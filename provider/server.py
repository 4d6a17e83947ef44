"""The gRPC adapter: driver wire format in, pipeline call, wire format out.

One ``grpc.aio`` server per socket name, because the name the driver reached us
by is itself a way to choose the backend (``--also-serve aws`` makes us a
drop-in for ``provider: aws``), and a gRPC handler cannot see which socket a
call came in on. Errors become a status here and nowhere else
(``provider.status``); one log line is written per Mount.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from secrets import token_hex
from typing import Any

import grpc

from provider import API_VERSION, PROVIDER_NAME, __version__, sockets
from provider.backends.base import FetchResult
from provider.errors import InvalidParameters
from provider.pipeline import MountInput, MountPipeline
from provider.redaction import redact
from provider.request import MountRequest
from provider.retry import Deadline
from provider.status import error_code, to_status
from provider.v1alpha1 import service_pb2, service_pb2_grpc

log = logging.getLogger("provider.server")

Context = grpc.aio.ServicerContext[Any, Any]

SPC_ATTRIBUTE = "secretProviderClass"


class MountObserver:
    """Told about every finished Mount (metrics hook)."""

    def mount_started(self) -> None:
        return None

    def mount_finished(self, backend: str, outcome: str, seconds: float) -> None:
        return None


def to_response(result: FetchResult) -> service_pb2.MountResponse:
    return service_pb2.MountResponse(
        object_version=[
            service_pb2.ObjectVersion(id=v.id, version=v.version) for v in result.versions
        ],
        files=[
            service_pb2.File(path=f.path, mode=f.mode, contents=f.contents) for f in result.files
        ],
    )


class ProviderServicer(service_pb2_grpc.CSIDriverProviderServicer):
    def __init__(
        self,
        *,
        pipeline: MountPipeline,
        served_name: str,
        mount_timeout: float,
        observer: MountObserver | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._served_name = served_name
        self._mount_timeout = mount_timeout
        self._observer = observer or MountObserver()

    async def Version(
        self, request: service_pb2.VersionRequest, context: Context
    ) -> service_pb2.VersionResponse:
        return service_pb2.VersionResponse(
            version=API_VERSION, runtime_name=PROVIDER_NAME, runtime_version=__version__
        )

    def _deadline(self, context: Context) -> Deadline:
        remaining = context.time_remaining()
        budget = self._mount_timeout
        if remaining is not None and math.isfinite(remaining):
            # Keep a little for the answer itself to travel back.
            budget = min(budget, max(remaining - 0.05, 0.0))
        return Deadline.after(budget)

    async def Mount(
        self, request: service_pb2.MountRequest, context: Context
    ) -> service_pb2.MountResponse:
        started = time.perf_counter()
        self._observer.mount_started()
        parsed: MountRequest | None = None
        backend = "unknown"
        try:
            parsed = self._pipeline.parse(
                MountInput(
                    attributes=request.attributes,
                    secrets=request.secrets,
                    target_path=request.target_path,
                    permission=request.permission,
                    current_versions={v.id: v.version for v in request.current_object_version},
                )
            )
            deadline = self._deadline(context)
            prepared = await self._pipeline.prepare(
                parsed, served_name=self._served_name, deadline=deadline
            )
            # Known before the fetch, so a failed mount's log line and metrics
            # still name its backend.
            backend = prepared.backend
            outcome = await self._pipeline.fetch(parsed, prepared, deadline=deadline)
            backend = outcome.backend
            response = to_response(outcome.result)
        except asyncio.CancelledError:
            # The client went away or shutdown's grace period ran out: still
            # one log line and a finished mount (the in-flight gauge must drop).
            elapsed = time.perf_counter() - started
            self._log(
                parsed=parsed,
                backend=backend,
                objects=None,
                seconds=elapsed,
                outcome="Cancelled",
                message="the call was cancelled",
            )
            self._observer.mount_finished(backend, "Cancelled", elapsed)
            raise
        except Exception as exc:
            secrets = parsed.secret_values() if parsed is not None else ()
            code, message = to_status(exc, secrets)
            elapsed = time.perf_counter() - started
            self._log(
                parsed=parsed,
                backend=backend,
                objects=None,
                seconds=elapsed,
                outcome=error_code(exc),
                message=message,
                # The status message is bounded; the log keeps every problem.
                problems=[redact(p, secrets) for p in exc.problems]
                if isinstance(exc, InvalidParameters)
                else None,
            )
            if code == grpc.StatusCode.INTERNAL:
                log.error("unexpected error in Mount", exc_info=exc)
            self._observer.mount_finished(backend, error_code(exc), elapsed)
            await context.abort(code, message)
            raise  # unreachable: abort raises
        elapsed = time.perf_counter() - started
        self._log(
            parsed=parsed,
            backend=backend,
            objects=outcome.object_count,
            seconds=elapsed,
            outcome="ok",
            message="",
        )
        self._observer.mount_finished(backend, "ok", elapsed)
        return response

    def _log(
        self,
        *,
        parsed: MountRequest | None,
        backend: str,
        objects: int | None,
        seconds: float,
        outcome: str,
        message: str,
        problems: list[str] | None = None,
    ) -> None:
        pod = parsed.pod if parsed is not None else None
        log.log(
            logging.INFO if outcome == "ok" else logging.WARNING,
            "mount %s" % ("succeeded" if outcome == "ok" else "failed"),
            extra={
                "pod": pod.describe() if pod else "",
                "service_account": pod.service_account if pod else "",
                "secret_provider_class": parsed.attributes.get(SPC_ATTRIBUTE, "") if parsed else "",
                "socket": self._served_name,
                "backend": backend,
                "objects": objects,
                "duration_ms": round(seconds * 1000, 2),
                "outcome": outcome,
                **({"error": message} if message else {}),
                **({"problems": problems} if problems else {}),
            },
        )


class ProviderServer:
    """Serves the provider on ``<socket_dir>/<name>.sock`` for every name."""

    def __init__(
        self,
        *,
        pipeline: MountPipeline,
        socket_dir: str,
        names: Sequence[str],
        mount_timeout: float,
        observer: MountObserver | None = None,
        extra_services: Sequence[object] = (),
    ) -> None:
        self._pipeline = pipeline
        self._paths = [sockets.socket_path(socket_dir, n) for n in names]
        self._names = list(names)
        self._mount_timeout = mount_timeout
        self._observer = observer
        self._extra = list(extra_services)
        self._servers: list[grpc.aio.Server] = []
        self._inodes: dict[Path, int] = {}

    @property
    def paths(self) -> list[Path]:
        return list(self._paths)

    async def start(self) -> None:
        for path in self._paths:
            sockets.prepare(path)
        for name, path in zip(self._names, self._paths, strict=True):
            server = grpc.aio.server(
                options=[
                    ("grpc.max_send_message_length", 16 * 1024 * 1024),
                    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
                ]
            )
            service_pb2_grpc.add_CSIDriverProviderServicer_to_server(
                ProviderServicer(
                    pipeline=self._pipeline,
                    served_name=name,
                    mount_timeout=self._mount_timeout,
                    observer=self._observer,
                ),
                server,
            )
            for register in self._extra:
                register(server)  # type: ignore[operator]
            # Bind under a private name, then rename into place: gRPC unlinks
            # the path it bound when it stops, and after a rolling update with
            # maxSurge that path would be the new pod's socket. Renaming also
            # means the driver never finds a socket that is not yet serving.
            # (5 bytes: shorter than any "<name>.sock", so never over the
            # 107-byte limit of a Unix socket path when the final one is not.)
            private = path.with_name(f".{token_hex(2)}")
            # umask 077 while binding: the socket is never world-accessible,
            # not even for the instant before chmod.
            old = os.umask(0o077)
            try:
                server.add_insecure_port(f"unix:{private}")
            finally:
                os.umask(old)
            await server.start()
            sockets.restrict(private)
            os.replace(private, path)
            self._inodes[path] = path.stat().st_ino
            self._servers.append(server)
            log.info("serving", extra={"socket": str(path)})

    async def stop(self, grace: float | None) -> None:
        """Stop accepting; let in-flight calls finish for ``grace`` seconds; remove sockets."""
        # All at once: each server's in-flight calls share the same grace period.
        await asyncio.gather(*(server.stop(grace) for server in self._servers))
        self._servers.clear()
        for path, inode in self._inodes.items():
            # Only our own socket: during a rolling update with maxSurge the new
            # pod may already have replaced it, and removing that one would cut
            # the driver off from the new provider. (Our listener pins its inode,
            # so a newer socket at the path always has a different one.)
            try:
                if path.lstat().st_ino == inode:
                    sockets.remove(path)
            except FileNotFoundError:
                pass
        self._inodes.clear()

    async def wait(self) -> None:
        for server in self._servers:
            await server.wait_for_termination()
