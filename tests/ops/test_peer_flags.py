"""The reference providers' flags, as their DaemonSets pass them, accepted by ``serve``.

Why this exists: a drop-in must also take the peers' command lines. Each alias
is checked for the setting it lands in, Go's spellings (one dash, ``=false``
after a boolean) for every flag of ours, the flags accepted without effect
for the start-up notice that names them, the values we cannot honour for a
refusal naming the flag, and ``POLYSECRET_<FLAG>`` for every flag. One
end-to-end run takes vault-csi-provider's own TLS flags to a real OpenBao
behind mutual TLS, reached only if every alias landed where it should.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from provider import cli, peerflags
from provider.mountcli import mount_once
from provider.settings import ServerSettings
from provider.spc import load_spc
from tests.conformance import backends
from tests.conformance.harness import publish_attributes
from tests.conformance.mounts import tokens_json
from tests.support.openbao import OpenBao, TokenSigner, openbao_server


def _args(*argv: str) -> argparse.Namespace:
    args = cli.parse_args(["serve", *argv])
    peerflags.apply(args)
    return args


def _settings(*argv: str) -> ServerSettings:
    return cli.settings_from(_args(*argv), {})


def _vault(*argv: str) -> Any:
    return _settings(*argv).backends["vault"]


@pytest.fixture(autouse=True)
def _no_polysecret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.startswith(("POLYSECRET_", "VAULT_", "BAO_"))]:
        monkeypatch.delenv(name)


# -- vault-csi-provider -------------------------------------------------------------


@pytest.mark.parametrize("dash", ["-", "--"])
def test_vault_csi_provider_flags(dash: str) -> None:
    vault = _vault(
        f"{dash}vault-addr=https://vault.vault.svc:8200", f"{dash}vault-mount=jwt-prod",
        f"{dash}vault-namespace=team-a", f"{dash}vault-tls-ca-cert=/ca/ca.pem",
        f"{dash}vault-tls-ca-directory=/ca/dir", f"{dash}vault-tls-client-cert=/c/tls.crt",
        f"{dash}vault-tls-client-key=/c/tls.key", f"{dash}vault-tls-server-name=vault.test",
        f"{dash}vault-tls-skip-verify",
    )  # fmt: skip
    assert (vault.address, vault.auth_mount, vault.namespace) == (
        "https://vault.vault.svc:8200", "jwt-prod", "team-a",
    )  # fmt: skip
    tls = vault.tls
    assert (tls.ca_cert, tls.ca_directory, tls.client_cert, tls.client_key, tls.server_name) == (
        "/ca/ca.pem", "/ca/dir", "/c/tls.crt", "/c/tls.key", "vault.test",
    )  # fmt: skip
    assert tls.skip_verify is True


def test_go_booleans_take_an_explicit_value() -> None:
    assert _vault("-vault-tls-skip-verify=true").tls.skip_verify is True
    assert _vault("-vault-tls-skip-verify=false").tls.skip_verify is False
    assert _vault("--vault-skip-tls-verify=0").tls.skip_verify is False
    azure = _settings("-azure-skip-challenge-resource-check=T").backends["azure"]
    assert azure.verify_challenge_resource is False
    with pytest.raises(argparse.ArgumentTypeError):
        cli.parse_args(["serve", "-vault-tls-skip-verify=maybe"])


@pytest.mark.parametrize(
    ("argv", "socket_dir", "name"),
    [
        (["-endpoint=/provider/vault.sock"], "/provider", "vault"),
        (["--endpoint", "unix:///provider/azure.sock"], "/provider", "azure"),
        (["--provider-volume=/etc/kubernetes/secrets-store-csi-providers"],
         "/etc/kubernetes/secrets-store-csi-providers", "polysecret"),
    ],
    ids=["vault-endpoint", "azure-endpoint", "aws-provider-volume"],
)  # fmt: skip
def test_socket_flags(argv: list[str], socket_dir: str, name: str) -> None:
    settings = _settings(*argv)
    assert (settings.socket_dir, settings.name) == (socket_dir, name)


@pytest.mark.parametrize(
    ("argv", "level"),
    [(["-log-level=warn"], "warning"), (["-log-level=trace"], "debug"),
     (["-log-level=off"], "critical"), (["-log-level=error"], "error"), (["-debug"], "debug"),
     (["-debug=false"], "info"), (["-v=5"], "debug"), (["-v", "2"], "info")],
)  # fmt: skip
def test_log_levels_as_the_peers_spell_them(argv: list[str], level: str) -> None:
    assert _settings(*argv).log_level == level


# -- the Azure provider ---------------------------------------------------------------


def test_azure_provider_chart_args() -> None:
    """The args the Azure provider's chart renders by default, endpoint to health check."""
    settings = _settings(
        "--endpoint=unix:///provider/azure.sock", "--log-format-json=true", "-v=0",
        "--construct-pem-chain=true", "--healthz-port=8989", "--healthz-path=/healthz",
        "--healthz-timeout=5s", "--write-cert-and-key-in-separate-files=false",
        "--prometheus-port=8898", "--metrics-backend=Prometheus",
    )  # fmt: skip
    assert (settings.socket_dir, settings.name) == ("/provider", "azure")
    assert (settings.health_addr, settings.metrics_addr) == (":8989", ":8898")
    assert (settings.log_format, settings.log_level) == ("json", "info")
    assert _settings("--log-format-json=false").log_format == "text"


def test_cloud_name_sets_the_clouds_endpoints_unless_given() -> None:
    azure = _settings("--cloud-name=AzureUSGovernmentCloud").backends["azure"]
    assert azure.authority_host == "https://login.microsoftonline.us/"
    assert azure.keyvault_dns_suffix == "vault.usgovcloudapi.net"
    china = ("--cloud-name=azurechinacloud", "--azure-authority-host=https://login.example/")
    azure = _settings(*china).backends["azure"]
    assert azure.authority_host == "https://login.example/"
    assert azure.keyvault_dns_suffix == "vault.azure.cn"


# -- accepted without effect, and refused ------------------------------------------------


def test_flags_without_effect_are_named_at_start_up() -> None:
    args = cli.parse_args([
        "serve", "--driver-writes-secrets=true", "--qps=5", "--burst=10",
        "--eks-addon-version=v1.0.0-eksbuild.1", "--pod-identity-http-timeout=100ms",
        "-hmac-secret-name=vault-csi-provider-hmac-key", "-cache-size=1000",
        "--enable-pprof=false", "--pprof-port=6060", "--custom-user-agent=me",
    ])  # fmt: skip
    notices = peerflags.apply(args)
    named = [n.split()[0] for n in notices]
    assert named == [
        "--driver-writes-secrets", "--hmac-secret-name", "--cache-size", "--qps", "--burst",
        "--eks-addon-version", "--pod-identity-http-timeout", "--enable-pprof", "--pprof-port",
        "--custom-user-agent",
    ]  # fmt: skip
    assert "always returns the files to the driver" in notices[0]
    assert peerflags.apply(cli.parse_args(["serve"])) == []


@pytest.mark.parametrize(
    ("flag", "message"),
    [("--token-proxy-url=https://proxy", "--token-proxy-url: identity binding"),
     ("--sni-name=api.example", "--sni-name: identity binding"),
     ("--healthz-path=/live", "--healthz-path '/live'"),
     ("--metrics-backend=OpenCensus", "--metrics-backend 'OpenCensus'"),
     ("--cloud-name=AzureStackCloud", "--cloud-name 'AzureStackCloud' is not one of"),
     ("-endpoint=/provider/vault", "--endpoint '/provider/vault'")],
)  # fmt: skip
def test_values_we_cannot_honour_stop_the_start(
    flag: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["serve", flag]) == 2
    err = capsys.readouterr().err
    assert err.startswith("polysecret: cannot start: ") and message in err, err


@pytest.mark.parametrize(
    ("argv", "chain", "separate"),
    [([], True, False),
     (["--construct-pem-chain=false"], False, False),
     (["--write-cert-and-key-in-separate-files"], True, True),
     (["-write-cert-and-key-in-separate-files=true", "--construct-pem-chain"], True, True)],
)  # fmt: skip
def test_azure_output_flags_reach_the_azure_settings(
    argv: list[str], chain: bool, separate: bool
) -> None:
    settings = cli.settings_from(cli.parse_args(["serve", *argv]), {})
    azure = settings.backends["azure"]
    assert (azure.construct_pem_chain, azure.separate_cert_and_key) == (chain, separate)


def test_no_abbreviations() -> None:
    """With prefix matching, a peer's unknown flag could land in one of ours."""
    for argv in (["--vault-ad=x"], ["--socket=/x"], ["--max-par=3"]):
        with pytest.raises(SystemExit):
            cli.parse_args(["serve", *argv])


# -- every flag of ours: one dash and the environment -----------------------------------


def _our_flags() -> list[argparse.Action]:
    serve = cli.serve_parser(cli.build_parser())
    return [
        a for a in serve._actions
        if a.default is not argparse.SUPPRESS and a.dest != "help"
        and any(s.startswith("--") for s in a.option_strings)
    ]  # fmt: skip


def _sample(action: argparse.Action) -> str:
    if action.choices:
        return str(list(action.choices)[-1])
    if action.type in (int, float):
        return "7"
    if getattr(action.type, "__name__", "") == "_duration":
        return "30s"
    return "sample-value"


def test_every_flag_of_ours_in_go_single_dash_form() -> None:
    flags = _our_flags()
    assert len(flags) >= 25
    for action in flags:
        long = next(s for s in action.option_strings if s.startswith("--"))
        if action.nargs == 0:
            double, single = [long], ["-" + long[2:]]
        else:
            double, single = [f"{long}={_sample(action)}"], [f"-{long[2:]}={_sample(action)}"]
        assert vars(cli.parse_args(["serve", *single])) == vars(
            cli.parse_args(["serve", *double])
        ), long
        assert getattr(cli.parse_args(["serve", *single]), action.dest) != action.default, long


def test_every_flag_of_ours_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for action in _our_flags():
        name = peerflags.env_name(action)
        value = "true" if action.nargs == 0 else _sample(action)
        monkeypatch.setenv(name, value)
        from_env = getattr(cli.parse_args(["serve"]), action.dest)
        monkeypatch.delenv(name)
        flag = next(s for s in action.option_strings if s.startswith("--"))
        from_flag = getattr(
            cli.parse_args(["serve", flag] if action.nargs == 0 else ["serve", f"{flag}={value}"]),
            action.dest,
        )
        assert from_env == from_flag, name


def test_flag_beats_environment_and_help_shows_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POLYSECRET_MAX_PARALLEL", "3")
    assert cli.parse_args(["serve"]).max_parallel == 3
    assert cli.parse_args(["serve", "--max-parallel=5"]).max_parallel == 5
    help_text = " ".join(cli.serve_parser(cli.build_parser()).format_help().split())
    assert "[env POLYSECRET_MAX_PARALLEL; default: 3]" in help_text
    assert "[env POLYSECRET_WORKERS; default: 32]" in help_text
    monkeypatch.setenv("POLYSECRET_VAULT_SKIP_TLS_VERIFY", "yes-please")
    assert cli.main(["serve"]) == 2


# -- end to end: vault-csi-provider's TLS flags against OpenBao with mutual TLS -----------


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="psf-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_vault_chart_args_reach_openbao_over_mutual_tls(
    provider_process: Callable[..., Any], short_dir: Path, tmp_path: Path
) -> None:
    signer = TokenSigner()
    bao: OpenBao
    with openbao_server(with_tls=True) as bao:
        assert bao.tls is not None
        backends.seed_vault(bao, signer)
        scenario = backends.vault_scenario(bao, signer)
        process = provider_process(
            # vault-csi-provider's DaemonSet args, one dash, address by IP: only the
            # server-name alias makes the certificate (localhost, vault.test) match.
            f"-endpoint={short_dir}/vault.sock", f"-vault-addr={bao.mtls_address}",
            f"-vault-tls-ca-cert={bao.tls.ca_cert}", "-vault-tls-server-name=vault.test",
            f"-vault-tls-client-cert={bao.tls.client_cert}",
            f"-vault-tls-client-key={bao.tls.client_key}", "-vault-mount=kubernetes",
            "-log-level=debug", "-hmac-secret-name=vault-csi-provider-hmac-key",
        )  # fmt: skip
        started = process.wait_started()
        assert (short_dir / "vault.sock").is_socket()
        spc = load_spc(scenario.spc_yaml)
        parameters = {k: v for k, v in spc.parameters.items() if k != "vaultAddress"}
        response = mount_once(
            socket=short_dir / "vault.sock",
            attributes=publish_attributes(
                parameters, volume_attributes={"secretProviderClass": spc.name},
                pod_name=backends.POD_NAME, pod_namespace=backends.NAMESPACE,
                pod_uid=backends.POD_UID, service_account=backends.SERVICE_ACCOUNT,
                tokens=tokens_json(scenario.tokens),
            ),
            secrets=None, target=tmp_path / "target",
        )  # fmt: skip
        files = {f.path: (f.mode, f.contents) for f in response.files}
        assert files == scenario.files
        notices = [line["msg"] for line in process.log_lines()]
        assert any(m.startswith("--hmac-secret-name accepted, no effect") for m in notices)
        assert started["msg"] == "started"
        logged = json.dumps(process.log_lines())
        assert not any(s.decode() in logged for s in scenario.never_shown())
