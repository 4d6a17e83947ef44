"""The gRPC adapter: driver wire format in, pipeline call, wire format out.

One ``grpc.aio`` server per socket name, because the name the driver reached us
by is itself a way to choose the backend (``--also-serve aws`` makes us a
drop-in for ``provider: aws``), and a gRPC handler cannot see which socket a
call came in on. What a mount tells operators (its log line, metrics and, on
failure, status) is written by ``provider.observer``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from provider import API_VERSION, PROVIDER_NAME, __version__, sockets
from provider.backends.base import FetchResult
from provider.observer import MountMetrics, MountRecord, NoMetrics
from provider.pipeline import MountPipeline
from provider.request import parse_mount_request
from provider.retry import Deadline
from provider.v1alpha1 import service_pb2, service_pb2_grpc

log = logging.getLogger("provider.server")

Context = grpc.aio.ServicerContext[Any, Any]


def to_response(result: FetchResult) -> service_pb2.MountResponse:
    # Each message is built in place (``add``): building them first and
    # handing lists to the constructor copied every one, twice the CPU.
    response = service_pb2.MountResponse()
    add_version = response.object_version.add
    for v in result.versions:
        add_version(id=v.id, version=v.version)
    add_file = response.files.add
    for f in result.files:
        add_file(path=f.path, mode=f.mode, contents=f.contents)
    return response


class ProviderServicer(service_pb2_grpc.CSIDriverProviderServicer):
    def __init__(
        self,
        *,
        pipeline: MountPipeline,
        served_name: str,
        mount_timeout: float,
        metrics: MountMetrics | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._served_name = served_name
        self._mount_timeout = mount_timeout
        self._metrics = metrics or NoMetrics()

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
        record = MountRecord(self._metrics, self._served_name)
        try:
            record.request = parsed = parse_mount_request(
                attributes=request.attributes,
                secrets=request.secrets,
                permission=request.permission,
            )
            deadline = self._deadline(context)
            prepared = await self._pipeline.prepare(
                parsed, served_name=self._served_name, deadline=deadline
            )
            record.backend = prepared.backend
            outcome = await self._pipeline.fetch(parsed, prepared, deadline=deadline)
        except asyncio.CancelledError:
            record.cancelled()
            raise
        except Exception as exc:
            await context.abort(*record.failed(exc))
            raise  # unreachable: abort raises
        record.succeeded(outcome.object_count)
        return to_response(outcome.result)


class ProviderServer:
    """Serves the provider on ``<socket_dir>/<name>.sock`` for every name."""

    def __init__(
        self,
        *,
        pipeline: MountPipeline,
        socket_dir: str,
        names: Sequence[str],
        mount_timeout: float,
        metrics: MountMetrics | None = None,
        extra_services: Sequence[object] = (),
    ) -> None:
        self._pipeline = pipeline
        self._paths = [sockets.socket_path(socket_dir, n) for n in names]
        self._names = list(names)
        self._mount_timeout = mount_timeout
        self._metrics = metrics
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
                    metrics=self._metrics,
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
            private = path.with_name(f".{os.urandom(2).hex()}")
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
