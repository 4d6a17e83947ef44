"""Command line: ``serve`` (the daemon) and ``mount`` (a driver-shaped client).

``main`` is the one place that decides the exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Mapping, Sequence

from provider import PROVIDER_NAME, __version__
from provider.backends import add_all_flags, load_all_settings
from provider.settings import DEFAULT_SOCKET_DIR, ServerSettings

log = logging.getLogger("provider.cli")


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="polysecret", description=__doc__)
    parser.add_argument("--version", action="version", version=f"{PROVIDER_NAME} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the provider API on a Unix socket")
    env = os.environ.get
    serve.add_argument("--socket-dir", default=env("POLYSECRET_SOCKET_DIR", DEFAULT_SOCKET_DIR))
    serve.add_argument("--name", default=PROVIDER_NAME, help="socket name = spec.provider")
    serve.add_argument(
        "--also-serve",
        type=_names,
        default=(),
        help="comma list of more socket names (aws,azure,vault: drop-in for those providers)",
    )
    serve.add_argument("--max-parallel", type=int, default=8,
                       help="objects fetched at once per mount")
    serve.add_argument("--workers", type=int, default=32, help="threads for backend calls")
    serve.add_argument("--mount-timeout", type=float, default=90.0, help="seconds per Mount")
    serve.add_argument("--grace-period", type=float, default=20.0,
                       help="seconds for in-flight mounts on SIGTERM")
    serve.add_argument("--log-level", default=env("POLYSECRET_LOG_LEVEL", "info"),
                       choices=["debug", "info", "warning", "error"])
    serve.add_argument("--log-format", default="json", choices=["json", "text"])
    serve.add_argument("--node-name", default=env("NODE_NAME", ""),
                       help="this node (for region lookup)")
    serve.add_argument("--kube-api", default="", help="Kubernetes API URL (default: in-cluster)")
    serve.add_argument("--kube-token-file", default="",
                       help="bearer token for the Kubernetes API (default: the mounted "
                            "service-account token in cluster, none with --kube-api)")
    serve.add_argument("--kube-ca-file", default="",
                       help="CA bundle for the Kubernetes API (default: the mounted "
                            "service-account CA in cluster, system CAs with --kube-api)")
    serve.add_argument("--hmac-key-file", default="",
                       help="key for object-version HMACs (default: random per process)")
    serve.add_argument("--health-addr", default="", help="HOST:PORT for HTTP probes (off if empty)")
    serve.add_argument("--metrics-addr", default="", help="HOST:PORT for /metrics (off if empty)")
    add_all_flags(serve)

    from provider import mountcli

    mountcli.add_parser(sub)
    return parser


def settings_from(args: argparse.Namespace, environ: Mapping[str, str]) -> ServerSettings:
    return ServerSettings(
        socket_dir=args.socket_dir,
        name=args.name,
        also_serve=tuple(args.also_serve),
        max_parallel=max(1, args.max_parallel),
        workers=max(1, args.workers),
        mount_timeout=args.mount_timeout,
        grace_period=args.grace_period,
        log_level=args.log_level,
        log_format=args.log_format,
        node_name=args.node_name,
        kube_api=args.kube_api,
        kube_token_file=args.kube_token_file,
        kube_ca_file=args.kube_ca_file,
        hmac_key_file=args.hmac_key_file,
        health_addr=args.health_addr,
        metrics_addr=args.metrics_addr,
        backends=load_all_settings(args, environ),
    )


def load_hmac_key(path: str) -> bytes:
    if not path:
        # A per-process key: versions change on restart, which only makes the
        # driver see a "new version" once. Set a file to keep them stable.
        return secrets.token_bytes(32)
    with open(path, "rb") as fh:
        key = fh.read().strip()
    if len(key) < 16:
        raise ValueError(f"--hmac-key-file {path}: key must be at least 16 bytes")
    return key


async def serve(settings: ServerSettings, environ: Mapping[str, str]) -> int:
    """Run until SIGTERM/SIGINT, then drain: the shape kubelet's pod shutdown expects.

    On the signal: stop accepting, let in-flight mounts finish within
    ``--grace-period`` (the chart gives the pod a few seconds more before
    SIGKILL), remove the sockets, exit 0.
    """
    from provider.app import App

    started = time.perf_counter()
    app = App(settings, environ, hmac_key=load_hmac_key(settings.hmac_key_file))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    log.info(
        "started",
        extra={
            "version": __version__,
            "startup_ms": round((time.perf_counter() - started) * 1000, 1),
            **{f"{name}_port": app.port(path) for name, path in _http_paths(settings)},
        },
    )
    try:
        await stop.wait()
        log.info("stopping", extra={"grace_seconds": settings.grace_period})
    finally:
        await app.stop()
    log.info("stopped")
    return 0


def _http_paths(settings: ServerSettings) -> list[tuple[str, str]]:
    return [
        (name, path)
        for name, path, addr in (
            ("health", "/healthz", settings.health_addr),
            ("metrics", "/metrics", settings.metrics_addr),
        )
        if addr
    ]


def _exit_if_backend_calls_linger(code: int) -> None:
    """Exit now when SDK calls cut off by the grace period still block pool threads.

    Their mounts were already answered (cancelled) and the sockets are gone,
    but the interpreter would join those threads at exit, up to an SDK read
    timeout later; kubelet would then SIGKILL us at the end of the pod's grace.
    """
    import threading

    # Idle pool threads exit at once after shutdown(); give them a moment.
    deadline = time.monotonic() + 0.5
    busy = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    for thread in busy:
        thread.join(max(0.0, deadline - time.monotonic()))
    busy = [t for t in busy if t.is_alive()]
    if busy:
        log.info("abandoning backend calls past the grace period", extra={"threads": len(busy)})
        logging.shutdown()
        sys.stderr.flush()
        os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        from provider import logs
        from provider.sockets import SocketError

        logs.configure(args.log_level, args.log_format)
        try:
            settings = settings_from(args, os.environ)
            code = asyncio.run(serve(settings, os.environ))
        except (SocketError, ValueError, OSError) as exc:
            print(f"polysecret: cannot start: {exc}", file=sys.stderr)
            return 2
        _exit_if_backend_calls_linger(code)
        return code
    if args.command == "mount":
        from provider import mountcli

        return mountcli.run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
