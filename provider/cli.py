"""Command line: ``serve`` (the daemon) and ``mount`` (a driver-shaped client).

``main`` is the one place that decides the exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from provider import PROVIDER_NAME, __version__, eventloop, peerflags
from provider.backends import add_all_flags, load_all_settings
from provider.settings import DEFAULT_SOCKET_DIR, ServerSettings

log = logging.getLogger("provider.cli")


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


class _NoAbbrevParser(argparse.ArgumentParser):
    """No abbreviations: a peer's flag must never silently match one of ours by prefix."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's, handed the terminal width.

    argparse makes a formatter for every flag added and, not handed a width,
    asks shutil: ``serve`` would load shutil (and with it bz2 and lzma, 0.5
    MiB of idle RSS on every node) only for that.
    """

    def __init__(
        self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        super().__init__(prog, indent_increment, max_help_position,
                         _terminal_columns() - 2 if width is None else width)


def _terminal_columns() -> int:
    """shutil.get_terminal_size().columns: $COLUMNS, else standard output's terminal, else 80."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


def _duration(text: str) -> float:
    from provider.durations import parse_duration

    try:
        return parse_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text[:32]!r} is not a duration such as 30s, 2m or 1h"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _NoAbbrevParser(
        prog="polysecret",
        description="A Secrets Store CSI Driver provider for AWS Secrets Manager and SSM, "
        "Azure Key Vault and HashiCorp Vault / OpenBao. Pods' secrets are fetched as the pod.",
        epilog="'polysecret COMMAND --help' shows each command's flags and defaults.",
    )
    parser.add_argument("--version", action="version", version=f"{PROVIDER_NAME} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_NoAbbrevParser)

    serve = sub.add_parser(
        "serve",
        help="serve the provider API on a Unix socket",
        description="Serve the provider API on <socket-dir>/<name>.sock for the Secrets Store "
        "CSI Driver. Every flag can also come from the environment variable shown with it "
        "(a flag on the command line wins).",
    )
    env = os.environ.get
    serve.add_argument("--socket-dir", default=env("POLYSECRET_SOCKET_DIR", DEFAULT_SOCKET_DIR),
                       help="the driver's providers directory (its linux.providersDir)")
    serve.add_argument("--name", default=PROVIDER_NAME, help="socket name = spec.provider")
    serve.add_argument(
        "--also-serve",
        type=_names,
        default=(),
        help="comma list of more socket names (aws,azure,vault: drop-in for those providers)",
    )
    serve.add_argument("--max-parallel", type=int, default=8,
                       help="objects fetched at once per mount")
    serve.add_argument("--workers", type=int, default=32,
                       help="threads for backend calls, per backend")
    serve.add_argument("--max-objects", type=int, default=1000,
                       help="objects one SecretProviderClass may mount, and the most "
                            "one 'select' may match")
    serve.add_argument("--max-mounts", type=int, default=0,
                       help="mounts fetched at once per backend; more wait or are shed with "
                            "UNAVAILABLE (0: 2 x workers / max-parallel)")
    serve.add_argument("--plan-cache-mib", type=int, default=64,
                       help="memory for parsed SecretProviderClasses (plan cache)")
    serve.add_argument("--mount-timeout", type=float, default=90.0, help="seconds per Mount")
    serve.add_argument("--grace-period", type=float, default=20.0,
                       help="seconds for in-flight mounts on SIGTERM")
    # warn, trace and off: vault-csi-provider's spellings (peerflags.LOG_LEVELS).
    serve.add_argument("--log-level", default=env("POLYSECRET_LOG_LEVEL", "info"),
                       choices=["debug", "info", "warning", "error", *peerflags.LOG_LEVELS],
                       help="least severe level logged (debug: backend details, never values)")
    serve.add_argument("--event-loop", default=env("POLYSECRET_EVENT_LOOP", "auto"),
                       choices=eventloop.CHOICES,
                       help="the event loop: uvloop if installed (auto), or asyncio's "
                       "(~20%% more CPU per mount, ~2 MiB less memory)")
    serve.add_argument("--log-format", default="json", choices=["json", "text"],
                       help="json lines, or text for humans")
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
    serve.add_argument("--refresh-interval", type=_duration, default=60.0,
                       help="refreshInterval of classes that set none: how long one read of a "
                       "static object serves every mount of the same identity (Go duration; "
                       "0 = read on every mount; default 60s)")
    serve.add_argument("--max-refresh-interval", type=_duration, default=3600.0,
                       help="largest refreshInterval a class may set; larger values are "
                       "capped (default 1h)")
    serve.add_argument("--object-cache-entries", type=int, default=10_000,
                       help="objects kept per object cache (shared and per-pod dynamic)")
    serve.add_argument("--object-cache-mib", type=int, default=32,
                       help="MiB of object values kept per object cache")
    add_all_flags(serve)
    peerflags.add_peer_flags(serve)
    peerflags.env_defaults(serve, os.environ)

    from provider import lint, mountcli

    mountcli.add_parser(sub)
    lint.add_parser(sub)
    return parser


def settings_from(args: argparse.Namespace, environ: Mapping[str, str]) -> ServerSettings:
    return ServerSettings(
        socket_dir=args.socket_dir,
        name=args.name,
        also_serve=tuple(args.also_serve),
        max_parallel=max(1, args.max_parallel),
        workers=max(1, args.workers),
        max_objects=max(1, args.max_objects),
        max_mounts=max(0, args.max_mounts),
        plan_cache_mib=max(1, args.plan_cache_mib),
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
        refresh_default=args.refresh_interval,
        refresh_max=args.max_refresh_interval,
        object_cache_entries=max(1, args.object_cache_entries),
        object_cache_bytes=max(1, args.object_cache_mib) * 1024 * 1024,
        backends=load_all_settings(args, environ),
    )


def load_hmac_key(path: str) -> bytes:
    if not path:
        # A per-process key: versions change on restart, which only makes the
        # driver see a "new version" once. Set a file to keep them stable.
        return os.urandom(32)  # secrets.token_bytes, without importing random at idle
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
            "event_loop": eventloop.name(loop),
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


def serve_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    found: argparse.ArgumentParser = next(
        a for a in parser._actions if a.dest == "command"
    ).choices["serve"]  # type: ignore[index]
    return found


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse, reading ``serve``'s flags the way Go does too (``-flag=v``, ``-bool=false``)."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        argv = ["serve", *peerflags.go_style(argv[1:], serve_parser(parser))]
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except ValueError as exc:  # a POLYSECRET_* variable that is not a boolean
        print(f"polysecret: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        from provider import logs
        from provider.sockets import SocketError

        try:
            notices = peerflags.apply(args)
        except ValueError as exc:
            print(f"polysecret: cannot start: {exc}", file=sys.stderr)
            return 2
        logs.configure(args.log_level, args.log_format)
        for notice in notices:
            log.info(notice)
        try:
            settings = settings_from(args, os.environ)
            with asyncio.Runner(loop_factory=eventloop.factory(args.event_loop)) as runner:
                code = runner.run(serve(settings, os.environ))
        except (SocketError, ValueError, OSError) as exc:
            print(f"polysecret: cannot start: {exc}", file=sys.stderr)
            return 2
        _exit_if_backend_calls_linger(code)
        return code
    if args.command == "mount":
        from provider import mountcli

        return mountcli.run(args)
    if args.command == "lint":
        from provider import lint

        return lint.run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
