"""The reference providers' flags, spelt their way, accepted by ``polysecret serve``.

Why this exists: operators replacing vault-csi-provider, the AWS provider or
the Azure provider carry their DaemonSet args over. Each peer flag is
handled in one of three ways, decided here and nowhere else:

* an **alias**: the same setting under the peer's name (``-vault-tls-ca-cert``
  is ``--vault-ca-cert``, ``--provider-volume`` is ``--socket-dir``,
  ``-endpoint=/provider/vault.sock`` is ``--socket-dir=/provider --name=vault``);
* **accepted, no effect**: a flag whose job polysecret does differently or not
  at all (``--driver-writes-secrets``, ``--qps``, ``-hmac-secret-name``); it is
  named at start-up with what polysecret does instead, never silently dropped;
* **refused**: a value polysecret cannot honour (``--token-proxy-url``): the
  server does not start, and says which flag.

Go's flag package also accepts one dash for long flags and ``=true``/``=false``
after a boolean; ``go_style`` rewrites those before argparse sees them. Every
flag can also come from the environment as ``POLYSECRET_<FLAG>``
(``env_defaults``).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Mapping, Sequence

# strconv.ParseBool, which Go's flag package uses for boolean flags.
_GO_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_GO_FALSE = {"0", "f", "F", "FALSE", "false", "False"}

# -log-level values of vault-csi-provider that are not Python level names.
LOG_LEVELS = {"warn": "warning", "trace": "debug", "off": "critical"}


def go_bool(text: str) -> bool:
    if text in _GO_TRUE:
        return True
    if text in _GO_FALSE:
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {text!r}")


def _go_optional_bool(group: argparse._ArgumentGroup, flag: str, help: str) -> None:
    """A boolean given as ``--flag`` or ``--flag=<bool>``, absent from args when not given."""
    group.add_argument(flag, nargs="?", const=True, type=go_bool, default=argparse.SUPPRESS,
                       metavar="BOOL", help=help)  # fmt: skip


def _accepted(group: argparse._ArgumentGroup, flag: str, help: str, **kw: object) -> None:
    group.add_argument(flag, default=argparse.SUPPRESS, help=help, **kw)  # type: ignore[arg-type]


def add_peer_flags(serve: argparse.ArgumentParser) -> None:
    """The peers' flags, in one group per peer (aliases share our flags' destinations)."""
    vault = serve.add_argument_group("vault-csi-provider's flags (aliases)")
    vault.add_argument("--endpoint", default=argparse.SUPPRESS, metavar="PATH",
                       help="socket path, also Azure's unix:///dir/name.sock form: "
                            "= --socket-dir=DIR --name=NAME")  # fmt: skip
    _go_optional_bool(vault, "--debug", "= --log-level=debug")
    for peer, ours in (("ca-cert", "ca-cert"), ("ca-directory", "ca-directory"),
                       ("client-cert", "client-cert"), ("client-key", "client-key")):  # fmt: skip
        vault.add_argument(f"--vault-tls-{peer}", dest=f"vault_{ours.replace('-', '_')}",
                           default=argparse.SUPPRESS, help=f"= --vault-{ours}")  # fmt: skip
    vault.add_argument("--vault-tls-skip-verify", dest="vault_skip_tls_verify",
                       action="store_const", const=True, default=argparse.SUPPRESS,
                       help="= --vault-skip-tls-verify")  # fmt: skip
    _accepted(vault, "--hmac-secret-name", "accepted, no effect: the key is read from "
              "--hmac-key-file (chart: provider.hmacKey)")  # fmt: skip
    _accepted(vault, "--cache-size", "accepted, no effect: token caches are bounded by the "
              "pods on the node", type=int)  # fmt: skip

    aws = serve.add_argument_group("AWS provider's flags (aliases)")
    aws.add_argument("--provider-volume", dest="socket_dir", default=argparse.SUPPRESS,
                     help="= --socket-dir")  # fmt: skip
    _go_optional_bool(aws, "--driver-writes-secrets", "accepted, no effect: polysecret always "
                      "returns the files to the driver, which writes them")  # fmt: skip
    _accepted(aws, "--qps", "accepted, no effect: the two API reads are cached", type=float)
    _accepted(aws, "--burst", "accepted, no effect: the two API reads are cached", type=int)
    _accepted(aws, "--eks-addon-version", "accepted, no effect")
    _accepted(aws, "--pod-identity-http-timeout", "accepted, no effect: the Pod Identity "
              "agent call shares the mount's deadline")  # fmt: skip

    azure = serve.add_argument_group("Azure provider's flags (aliases)")
    _go_optional_bool(azure, "--log-format-json", "= --log-format=json (false: text)")
    azure.add_argument("-v", "--v", dest="klog_verbosity", type=int, default=argparse.SUPPRESS,
                       metavar="N", help="klog verbosity: 4 or more = --log-level=debug")
    _accepted(azure, "--healthz-port", "= --health-addr=:PORT", type=int)
    _accepted(azure, "--healthz-path", "must be /healthz (the only path served)")
    _accepted(azure, "--healthz-timeout", "accepted, no effect")
    _accepted(azure, "--prometheus-port", "= --metrics-addr=:PORT", type=int)
    _accepted(azure, "--metrics-backend", "must be Prometheus")
    _go_optional_bool(azure, "--enable-pprof", "accepted, no effect (no profiling endpoint)")
    _accepted(azure, "--pprof-port", "accepted, no effect", type=int)
    _accepted(azure, "--custom-user-agent", "accepted, no effect")
    _go_optional_bool(azure, "--construct-pem-chain", "order a PFX's certificates server, "
                      "intermediate, root by key identifiers (default true); false keeps "
                      "the PKCS#12's order")  # fmt: skip
    _go_optional_bool(azure, "--write-cert-and-key-in-separate-files",
                      "also write <file>.crt and <file>.key for a certificate's PEM "
                      "(default false)")  # fmt: skip
    _accepted(azure, "--cloud-name", "default cloud: sets --azure-authority-host and "
              "--azure-keyvault-dns-suffix to that cloud's unless given")  # fmt: skip
    _accepted(azure, "--token-proxy-url", "refused when set: identity binding is not supported")
    _accepted(azure, "--sni-name", "refused when set: identity binding is not supported")


def _parse_endpoint(value: str) -> tuple[str, str]:
    path = value.removeprefix("unix://")
    directory, _, file = path.rpartition("/")
    name = file.removesuffix(".sock")
    if not directory or not name or not file.endswith(".sock"):
        raise ValueError(f"--endpoint {value!r}: expected /dir/name.sock or unix:///dir/name.sock")
    return directory, name


def apply(args: argparse.Namespace) -> list[str]:
    """Fold the peer flags given into our settings; the start-up notices to log.

    Raises ValueError naming the flag when a value cannot be honoured.
    """
    given = vars(args)
    notices: list[str] = []

    def note(flag: str, what: str) -> None:
        notices.append(f"--{flag} {what}")

    if "endpoint" in given:
        args.socket_dir, args.name = _parse_endpoint(args.endpoint)
    if given.get("debug"):
        args.log_level = "debug"
    args.log_level = LOG_LEVELS.get(args.log_level, args.log_level)
    if "log_format_json" in given:
        args.log_format = "json" if args.log_format_json else "text"
    if given.get("klog_verbosity", 0) >= 4:
        args.log_level = "debug"
    if "healthz_port" in given:
        args.health_addr = f":{args.healthz_port}"
    if given.get("healthz_path", "/healthz") != "/healthz":
        raise ValueError(f"--healthz-path {args.healthz_path!r}: only /healthz is served")
    if "prometheus_port" in given:
        args.metrics_addr = f":{args.prometheus_port}"
    if given.get("metrics_backend", "prometheus").lower() != "prometheus":
        raise ValueError(f"--metrics-backend {args.metrics_backend!r}: only Prometheus")
    for flag in ("token_proxy_url", "sni_name"):
        if given.get(flag):
            raise ValueError(f"--{flag.replace('_', '-')}: identity binding is not supported")
    if "cloud_name" in given:
        _apply_cloud(args)
    if "driver_writes_secrets" in given:
        note("driver-writes-secrets", "accepted: polysecret always returns the files to the "
             "driver, which writes them (the AWS provider's --driver-writes-secrets=true way)")
    for flag, instead in (
        ("hmac_secret_name", "the HMAC key is read from --hmac-key-file"),
        ("cache_size", "token caches are bounded by the pods on the node"),
        ("qps", "the Kubernetes API reads are cached per ServiceAccount and Node"),
        ("burst", "the Kubernetes API reads are cached per ServiceAccount and Node"),
        ("eks_addon_version", "informational only"),
        ("pod_identity_http_timeout", "the Pod Identity call shares the mount's deadline"),
        ("healthz_timeout", "the liveness check has its own short deadline"),
        ("enable_pprof", "there is no profiling endpoint"),
        ("pprof_port", "there is no profiling endpoint"),
        ("custom_user_agent", "the SDKs' user agents are kept"),
    ):
        if flag in given:
            note(flag.replace("_", "-"), f"accepted, no effect: {instead}")
    return notices


def _apply_cloud(args: argparse.Namespace) -> None:
    from provider.backends.azure.config import CLOUDS

    cloud = CLOUDS.get(str(args.cloud_name).lower())
    if cloud is None:
        raise ValueError(
            f"--cloud-name {args.cloud_name!r} is not one of "
            f"{', '.join(c.name for c in CLOUDS.values())}: set --azure-authority-host and "
            "--azure-keyvault-dns-suffix for a custom cloud"
        )
    if not getattr(args, "azure_authority_host", None):
        args.azure_authority_host = cloud.authority_host
    if not getattr(args, "azure_keyvault_dns_suffix", None):
        args.azure_keyvault_dns_suffix = cloud.keyvault_dns_suffix


def _long_options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in parser._actions for s in a.option_strings if s.startswith("--")}


_GO_FLAG = re.compile(r"-{1,2}([A-Za-z][A-Za-z0-9_-]*)(?:=(.*))?", re.DOTALL)


def go_style(argv: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    """Rewrite Go flag syntax the way Go reads it, for the options ``parser`` knows.

    ``-name``/``-name=v`` become ``--name``/``--name=v``; a flag that takes no
    value given as ``--flag=<bool>`` becomes ``--flag`` (true) or nothing
    (false), as Go's boolean flags allow. Anything else is left for argparse.
    """
    options = _long_options(parser)
    out: list[str] = []
    expecting_value = False
    for token in argv:
        match = None if expecting_value else _GO_FLAG.fullmatch(token)
        expecting_value = False
        if match is None or f"--{match.group(1)}" not in options:
            out.append(token)
            continue
        flag, value = f"--{match.group(1)}", match.group(2)
        action = options[flag]
        if action.nargs == 0 and value is not None:
            if go_bool(value):
                out.append(flag)
            continue
        out.append(flag if value is None else f"{flag}={value}")
        expecting_value = value is None and action.nargs is None
    return out


def env_name(action: argparse.Action) -> str:
    long = next(s for s in action.option_strings if s.startswith("--"))
    return "POLYSECRET_" + long[2:].upper().replace("-", "_")


def env_defaults(parser: argparse.ArgumentParser, environ: Mapping[str, str],
                 skip: Iterable[str] = ("help",)) -> None:  # fmt: skip
    """Every flag of ours reads ``POLYSECRET_<FLAG>``; --help shows it with the default.

    The environment sets the default, so a flag on the command line still wins.
    Peer aliases (no default of their own) are left out: their ``POLYSECRET_``
    name is ours.
    """
    for action in parser._actions:
        if action.dest in skip or action.default is argparse.SUPPRESS:
            continue
        if not any(s.startswith("--") for s in action.option_strings):
            continue
        name = env_name(action)
        raw = environ.get(name)
        if raw is not None:
            if action.nargs == 0:  # store_true / store_const: a Go-style boolean
                try:
                    action.default = action.const if go_bool(raw.strip()) else action.default
                except argparse.ArgumentTypeError as exc:
                    raise ValueError(f"{name}: {exc}") from None
            else:
                action.default = raw
        shown = "%(default)s" if action.default not in (None, "", ()) else "none"
        action.help = f"{action.help or ''} [env {name}; default: {shown}]".strip()
