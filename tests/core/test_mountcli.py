"""`polysecret mount` as a user runs it: stdin, the class's namespace, no provider running.

A small recording gRPC server stands in for the provider here (the real
provider's mounts are covered per backend): these tests are about what the
command sends and how it fails, not about a backend.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from provider.v1alpha1 import service_pb2, service_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]

SPC = """apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: app-secrets
  namespace: payments
spec:
  provider: recorder
  parameters:
    backend: vault
    objects: "[]"
"""


class Recorder(service_pb2_grpc.CSIDriverProviderServicer):
    def __init__(self) -> None:
        self.requests: list[service_pb2.MountRequest] = []

    def Mount(self, request: service_pb2.MountRequest, context: Any) -> service_pb2.MountResponse:
        self.requests.append(request)
        return service_pb2.MountResponse(
            object_version=[service_pb2.ObjectVersion(id="a", version="1")],
            files=[service_pb2.File(path="a", mode=0o600, contents=b"value-a")],
        )


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[Recorder]:
    servicer = Recorder()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    service_pb2_grpc.add_CSIDriverProviderServicer_to_server(servicer, server)
    server.add_insecure_port(f"unix:{tmp_path / 'recorder.sock'}")
    server.start()
    try:
        yield servicer
    finally:
        server.stop(0).wait()


def _mount(
    tmp_path: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "provider",
            "mount",
            *args,
            "--socket-dir",
            str(tmp_path),
            "--target",
            str(tmp_path / "target"),
            "--timeout",
            "60",
        ],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        # Far below --timeout: a command that waited for the socket would be killed here.
        timeout=20,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_class_from_stdin_and_namespace_from_the_class(tmp_path: Path, recorder: Recorder) -> None:
    done = _mount(tmp_path, "-", stdin=SPC)
    assert done.returncode == 0, done.stderr
    (request,) = recorder.requests
    attributes = json.loads(request.attributes)
    assert attributes["csi.storage.k8s.io/pod.namespace"] == "payments"
    assert attributes["backend"] == "vault"
    assert (tmp_path / "target" / "a").read_bytes() == b"value-a"


def test_namespace_flag_wins_over_the_class(tmp_path: Path, recorder: Recorder) -> None:
    spc = tmp_path / "spc.yaml"
    spc.write_text(SPC)
    done = _mount(tmp_path, str(spc), "--namespace", "other")
    assert done.returncode == 0, done.stderr
    attributes = json.loads(recorder.requests[0].attributes)
    assert attributes["csi.storage.k8s.io/pod.namespace"] == "other"


def test_no_socket_fails_at_once_naming_it(tmp_path: Path) -> None:
    done = _mount(tmp_path, "-", stdin=SPC)
    assert done.returncode == 1
    assert f"no provider socket at {tmp_path / 'recorder.sock'}" in done.stderr
    assert not (tmp_path / "target").exists()


def test_dead_socket_fails_at_once_naming_it(tmp_path: Path) -> None:
    # A socket file left behind by a provider that is gone: nobody accepts.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(tmp_path / "recorder.sock"))
    stale.close()
    done = _mount(tmp_path, "-", stdin=SPC)
    assert done.returncode == 1
    assert f"no provider is listening on {tmp_path / 'recorder.sock'}" in done.stderr
