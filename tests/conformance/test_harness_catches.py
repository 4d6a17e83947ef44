"""The conformance checks themselves, run against a deliberately broken provider.

Why this exists: a conformance test that passes for a provider with the
driver-visible bugs it is meant to catch proves nothing. Here a tiny real
gRPC provider (grpc.server on a Unix socket, the generated
CSIDriverProviderServicer) forwards each Mount to our real provider and then
breaks the answer: (a) no object versions, (b) an unclean or escaping file
path, (c) a wrong file mode. The driver's Go client must fail the mount for
(a) and (b) with the driver's own message; for (c) the driver writes what it
is told, so the tree comparison of test_backends.py must report the mode.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from provider.v1alpha1 import service_pb2, service_pb2_grpc
from tests.conformance import backends
from tests.conformance.conftest import Backend
from tests.conformance.mounts import cli_mount, go_mount
from tests.conformance.trees import assert_same_tree, read_tree, tree_differences

pytestmark = pytest.mark.conformance

Breaker = Callable[[service_pb2.MountResponse], None]

PUBLISH_PREFIX = (
    f"failed to mount secrets store objects for pod {backends.NAMESPACE}/{backends.POD_NAME}, err: "
)


class BrokenProvider(service_pb2_grpc.CSIDriverProviderServicer):
    """Asks the real provider, then applies ``breaker`` to its answer."""

    def __init__(self, upstream: Path) -> None:
        self.channel = grpc.insecure_channel(f"unix:{upstream}")
        self.stub = service_pb2_grpc.CSIDriverProviderStub(self.channel)
        self.breaker: Breaker = lambda response: None
        self.mounts = 0

    def Version(self, request: Any, context: Any) -> service_pb2.VersionResponse:
        return service_pb2.VersionResponse(
            version="v1alpha1", runtime_name="broken", runtime_version="0.0.1"
        )

    def Mount(self, request: Any, context: Any) -> service_pb2.MountResponse:
        self.mounts += 1
        response: service_pb2.MountResponse = self.stub.Mount(request, timeout=30)
        self.breaker(response)
        return response


@pytest.fixture(scope="module")
def broken(aws_backend: Backend) -> Iterator[tuple[BrokenProvider, Path]]:
    """A broken provider at <dir>/polysecret.sock in front of the real AWS provider."""
    sockets = Path(tempfile.mkdtemp(prefix="psc-broken-", dir="/tmp"))
    servicer = BrokenProvider(aws_backend.provider.socket())
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    service_pb2_grpc.add_CSIDriverProviderServicer_to_server(servicer, server)
    old = os.umask(0o077)
    try:
        server.add_insecure_port(f"unix:{sockets / 'polysecret.sock'}")
    finally:
        os.umask(old)
    server.start()
    try:
        yield servicer, sockets
    finally:
        server.stop(grace=None).wait(5)
        servicer.channel.close()
        shutil.rmtree(sockets, ignore_errors=True)


@pytest.fixture
def aws_scenario(aws_backend: Backend) -> backends.Scenario:
    return aws_backend.make()


def _drop_versions(response: service_pb2.MountResponse) -> None:
    del response.object_version[:]


def _rename_first(path: str) -> Breaker:
    def breaker(response: service_pb2.MountResponse) -> None:
        response.files[0].path = path

    return breaker


@pytest.mark.parametrize(
    ("breaker", "message"),
    [
        pytest.param(_drop_versions, "missing object versions", id="no-object-versions"),
        pytest.param(
            _rename_first("a//b"), 'invalid filepath: "a//b"', id="unclean-a//b"
        ),
        pytest.param(
            _rename_first("../x"), "invalid path: must not contain '..': ../x",
            id="escaping-../x",
        ),
        pytest.param(
            _rename_first("a/./b"), 'invalid filepath: "a/./b"', id="unclean-a/./b"
        ),
        pytest.param(
            _rename_first("/etc/x"), "invalid path: must be relative path: /etc/x",
            id="absolute",
        ),
        pytest.param(
            _rename_first("..data/x"), "invalid path: must not start with '..': ..data/x",
            id="writer-reserved",
        ),
    ],
)  # fmt: skip
def test_driver_fails_a_broken_answer(
    broken: tuple[BrokenProvider, Path],
    aws_scenario: backends.Scenario,
    *,
    binaries: dict[str, Path],
    breaker: Breaker,
    message: str,
    tmp_path: Path,
) -> None:
    servicer, sockets = broken
    servicer.breaker = breaker
    for line, binary in sorted(binaries.items()):
        target = tmp_path / line
        before = servicer.mounts
        result = go_mount(binary, aws_scenario, socket_dir=sockets, target=target)
        assert servicer.mounts == before + 1  # the broken provider really answered
        assert not result.ok, f"{line}: the driver accepted a broken answer"
        assert result.error == PUBLISH_PREFIX + message, f"{line}: {result.error}"
        for value in aws_scenario.never_shown():
            assert value.decode() not in result.error
        assert os.listdir(target) == []  # nothing written


def _set_mode(path: str, mode: int) -> Breaker:
    def breaker(response: service_pb2.MountResponse) -> None:
        for f in response.files:
            if f.path == path:
                f.mode = mode

    return breaker


def _our_tree(backend: Backend, scenario: backends.Scenario, tmp_path: Path) -> Path:
    """What `polysecret mount` writes from the real (unbroken) provider."""
    ours = tmp_path / "ours"
    cli_mount(
        scenario, socket_dir=backend.socket_dir, target=ours,
        spc_file=tmp_path / "spc.yaml", driver_line="v1.6",
    )  # fmt: skip
    return ours


def test_tree_check_catches_a_wrong_mode(
    broken: tuple[BrokenProvider, Path],
    aws_backend: Backend,
    aws_scenario: backends.Scenario,
    binaries: dict[str, Path],
    tmp_path: Path,
) -> None:
    """0777 where the SPC asks 0600: the driver writes it, the comparison reports it."""
    servicer, sockets = broken
    servicer.breaker = _set_mode("keystore.p12", 0o777)
    ours = _our_tree(aws_backend, aws_scenario, tmp_path)
    for line, binary in sorted(binaries.items()):
        target = tmp_path / line
        result = go_mount(binary, aws_scenario, socket_dir=sockets, target=target)
        assert result.ok, result.error  # the driver does not check modes
        assert result.object_versions == aws_scenario.versions
        got = read_tree(target)
        assert got.files["keystore.p12"][0] == 0o777
        assert tree_differences(read_tree(ours), got) == ["keystore.p12: mode 0777, expected 0600"]
        with pytest.raises(AssertionError, match=r"keystore\.p12: mode 0777, expected 0600"):
            assert_same_tree(read_tree(ours), got)


def test_driver_drops_mode_bits_above_0777(
    broken: tuple[BrokenProvider, Path],
    aws_backend: Backend,
    aws_scenario: backends.Scenario,
    binaries: dict[str, Path],
    tmp_path: Path,
) -> None:
    """A setuid mode (0o4600) reaches the driver's writer as os.FileMode(0o4600), whose
    permission bits are 0600: Go drops the rest, so the volume equals ours. Should the
    driver ever honour such bits, this fails and the tree check must learn about them."""
    servicer, sockets = broken
    servicer.breaker = _set_mode("keystore.p12", 0o4600 | 0o2000)
    ours = _our_tree(aws_backend, aws_scenario, tmp_path)
    for line, binary in sorted(binaries.items()):
        target = tmp_path / line
        result = go_mount(binary, aws_scenario, socket_dir=sockets, target=target)
        assert result.ok, result.error
        st = (target / "keystore.p12").stat()
        assert st.st_mode & 0o7777 == 0o600, oct(st.st_mode)
        assert_same_tree(read_tree(ours), read_tree(target))


@pytest.mark.parametrize(
    ("path", "message"),
    [
        pytest.param("../x", "file path '../x' contains a '..' element", id="escaping"),
        pytest.param("a//b", "file path 'a//b' is not clean", id="unclean"),
    ],
)
def test_our_mount_command_refuses_a_broken_answer_like_the_driver(
    broken: tuple[BrokenProvider, Path],
    aws_scenario: backends.Scenario,
    tmp_path: Path,
    path: str,
    message: str,
) -> None:
    """`polysecret mount` reports a bad path as one clean line and writes nothing."""
    servicer, sockets = broken
    servicer.breaker = _rename_first(path)
    target = tmp_path / "ours"
    with pytest.raises(AssertionError) as failed:
        cli_mount(
            aws_scenario, socket_dir=sockets, target=target,
            spc_file=tmp_path / "spc.yaml", driver_line="v1.6",
        )  # fmt: skip
    said = str(failed.value)
    assert "mount failed: InvalidPath:" in said and "Traceback" not in said, said
    assert message in said, said
    assert not target.exists() or os.listdir(target) == []
