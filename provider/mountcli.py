"""``polysecret mount``: mount a SecretProviderClass by hand, like the driver would.

Reads a SecretProviderClass YAML, builds the same attributes JSON the driver
sends (parameters, volume attributes, pod identity, tokens), calls ``Mount`` on
a running provider's socket and writes the answer into a directory with the
driver's rules and atomic ``..data`` layout. Users debug their classes with it;
the demo and the tests use it too.
"""

from __future__ import annotations

import argparse
import json
import socket as socketlib
import sys
from pathlib import Path
from typing import Any

import grpc

from provider.errors import InvalidPath
from provider.settings import DEFAULT_SOCKET_DIR
from provider.spc import PodContext, build_attributes, load_spc
from provider.v1alpha1 import service_pb2, service_pb2_grpc
from provider.writer import PayloadFile, write_payload

# --driver-line choice -> is it v1.5.x's rotation reconciler?
DRIVER_LINES = {"v1.6": False, "v1.5": False, "v1.5-rotation": True}


def _pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"{flag} takes KEY=VALUE, got {key!r}")
        out[key] = value
    return out


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "mount",
        help="mount a SecretProviderClass into a directory, as the driver would",
        description="Call Mount on a running provider with the attributes the Secrets Store "
        "CSI Driver would send for a pod, and write the answer with the driver's rules.",
    )
    p.add_argument("spc", help="SecretProviderClass YAML file, or - to read it from stdin")
    p.add_argument("--target", required=True, help="directory to write the files into")
    p.add_argument(
        "--socket-dir",
        default=DEFAULT_SOCKET_DIR,
        help="where the provider's sockets are (default: %(default)s)",
    )
    p.add_argument(
        "--provider", default="", help="socket name (default: the class's spec.provider)"
    )
    p.add_argument("--pod-name", default="demo", help="the pod's name (default: %(default)s)")
    p.add_argument(
        "--namespace",
        default=None,
        help="the pod's namespace (default: the class's metadata.namespace, else 'default')",
    )
    p.add_argument(
        "--service-account",
        default="default",
        help="the pod's service account (default: %(default)s)",
    )
    p.add_argument(
        "--pod-uid",
        default="00000000-0000-0000-0000-000000000000",
        help="the pod's UID (default: %(default)s)",
    )
    p.add_argument(
        "--token",
        action="append",
        metavar="AUDIENCE=TOKEN",
        help="a service-account token for an audience (repeatable)",
    )
    p.add_argument(
        "--token-file",
        action="append",
        metavar="AUDIENCE=FILE",
        help="read the token for an audience from a file (repeatable)",
    )
    p.add_argument(
        "--secret",
        action="append",
        metavar="KEY=VALUE",
        help="nodePublishSecretRef data (repeatable)",
    )
    p.add_argument(
        "--volume-attribute",
        action="append",
        metavar="KEY=VALUE",
        help="a volumeAttributes entry of the pod's CSI volume (repeatable)",
    )
    p.add_argument(
        "--driver-line",
        choices=list(DRIVER_LINES),
        default="v1.6",
        help="mimic this caller: v1.6 and v1.5 send the same NodePublishVolume request "
        "(volume attributes, secrets null without nodePublishSecretRef); v1.5-rotation is "
        "v1.5.x's rotation reconciler (no volume attributes, secrets {})",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds to wait for the answer (default: %(default)s)",
    )
    p.add_argument("--quiet", action="store_true", help="do not print the files")


def listening(path: Path) -> str:
    """Why nobody answers on ``path``, or "" when something accepts connections there.

    gRPC's wait_for_ready would sit out the whole timeout on a missing socket
    and then say only DEADLINE_EXCEEDED; a plain connect tells at once.
    """
    if not path.exists():
        return f"no provider socket at {path} (is the provider running, with this --socket-dir?)"
    probe = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
    try:
        probe.settimeout(2.0)
        probe.connect(str(path))
    except OSError as exc:
        return f"no provider is listening on {path} ({exc.strerror or type(exc).__name__})"
    finally:
        probe.close()
    return ""


def mount_once(
    *,
    socket: Path,
    attributes: dict[str, str],
    secrets: dict[str, str] | None,
    target: Path,
    permission: str = "420",
    current_versions: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> service_pb2.MountResponse:
    """One Mount over the socket; raises grpc.RpcError on failure."""
    with grpc.insecure_channel(f"unix:{socket}") as channel:
        stub = service_pb2_grpc.CSIDriverProviderStub(channel)
        return stub.Mount(
            service_pb2.MountRequest(
                attributes=json.dumps(attributes),
                secrets="null" if secrets is None else json.dumps(secrets),
                target_path=str(target),
                permission=permission,
                current_object_version=[
                    service_pb2.ObjectVersion(id=k, version=v)
                    for k, v in (current_versions or {}).items()
                ],
            ),
            timeout=timeout,
            wait_for_ready=True,
        )


def run(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.spc == "-" else Path(args.spc).read_text(encoding="utf-8")
    spc = load_spc(text)
    tokens = _pairs(args.token, "--token")
    for aud, path in _pairs(args.token_file, "--token-file").items():
        tokens[aud] = Path(path).read_text(encoding="utf-8").strip()
    pod = PodContext(
        name=args.pod_name,
        namespace=args.namespace or spc.namespace or "default",
        uid=args.pod_uid,
        service_account=args.service_account,
        tokens=tokens,
    )
    attributes = build_attributes(
        spc,
        pod,
        volume_attributes=_pairs(args.volume_attribute, "--volume-attribute"),
        rotation_reconciler=DRIVER_LINES[args.driver_line],
    )
    secrets: dict[str, str] | None = _pairs(args.secret, "--secret")
    if not secrets:
        # Go marshals NodePublishVolume's nil map as null; the reconciler makes a fresh {}.
        secrets = {} if DRIVER_LINES[args.driver_line] else None
    socket = Path(args.socket_dir) / f"{args.provider or spc.provider}.sock"
    target = Path(args.target)
    problem = listening(socket)
    if problem:
        print(f"mount failed: {problem}", file=sys.stderr)
        return 1
    try:
        response = mount_once(
            socket=socket,
            attributes=attributes,
            secrets=secrets,
            target=target,
            timeout=args.timeout,
        )
    except grpc.RpcError as exc:
        print(f"mount failed: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    if response.error.code:
        print(f"mount failed: provider error code {response.error.code}", file=sys.stderr)
        return 1
    if not response.object_version:
        print("mount failed: the provider returned no object versions", file=sys.stderr)
        return 1
    try:
        write_payload(
            target,
            [PayloadFile(path=f.path, mode=f.mode, contents=f.contents) for f in response.files],
        )
    except InvalidPath as exc:
        # The driver refuses such an answer whole, before writing anything; so do we.
        print(f"mount failed: {exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        for f in sorted(response.files, key=lambda f: f.path):
            print(f"{oct(f.mode)[2:]:>4}  {len(f.contents):6d} B  {target / f.path}")
        for v in sorted(response.object_version, key=lambda v: v.id):
            print(f"version  {v.id} = {v.version}")
    return 0
