"""The chart and the provider agree: every serve flag has a value, every rendered arg parses."""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from provider.backends import BACKEND_NAMES
from provider.cli import build_parser, serve_parser

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "daemonset" / "chart"
HELM = Path(os.environ.get("POLYSECRET_CACHE", Path.home() / ".cache" / "polysecret"))

# Server flags whose value lives somewhere else than provider.<camelCase>.
ELSEWHERE = {
    "--health-addr": ("health", "port"),
    "--metrics-addr": ("metrics", "port"),
    "--hmac-key-file": ("provider", "hmacKey"),
    "--node-name": None,  # NODE_NAME from the downward API, always set
    # In cluster the mounted service-account token and CA; set for out-of-cluster use.
    "--kube-token-file": None,
    "--kube-ca-file": None,
}


def _serve_flags() -> list[str]:
    serve = serve_parser(build_parser())
    # argparse lists a parser's actions only in ``_actions`` (no public accessor).
    # Our own flags; the peers' aliases (provider/peerflags.py, no default of their
    # own) land in these, so the chart has no values for them.
    return [
        s for a in serve._actions for s in a.option_strings
        if s.startswith("--") and s not in ("--help",) and a.default is not argparse.SUPPRESS
    ]


def _camel(kebab: str) -> str:
    head, *rest = kebab.split("-")
    return head + "".join(w.capitalize() for w in rest)


def test_every_serve_flag_has_a_chart_value() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = []
    for flag in _serve_flags():
        backend = next((b for b in BACKEND_NAMES if flag.startswith(f"--{b}-")), None)
        if backend:
            path: tuple[str, ...] | None = (backend, _camel(flag[len(backend) + 3:]))
        elif flag in ELSEWHERE:
            path = ELSEWHERE[flag]
        else:
            path = ("provider", _camel(flag[2:]))
        node: Any = values
        for key in path or ():
            if not isinstance(node, dict) or key not in node:
                missing.append(f"{flag} -> {'.'.join(path or ())}")
                break
            node = node[key]
    assert not missing, f"flags without a chart value: {missing}"


def _container_args(manifest: str) -> list[str]:
    for doc in yaml.safe_load_all(manifest):
        # Ours, not the driver's (the chart can install the driver too).
        if doc and doc.get("kind") == "DaemonSet":
            container = doc["spec"]["template"]["spec"]["containers"][0]
            if container["name"] == "provider":
                return list(container["args"])
    raise AssertionError("no DaemonSet rendered")


def _parses(args: list[str]) -> Any:
    return build_parser().parse_args(["serve", *args])


def test_plain_manifest_args_parse() -> None:
    args = _container_args((REPO / "daemonset" / "manifests" / "polysecret.yaml").read_text())
    parsed = _parses(args)
    assert parsed.health_addr == ":8098" and parsed.metrics_addr == ":8095"
    assert parsed.socket_dir == "/var/run/secrets-store-csi-providers"


def _helm() -> Path:
    found = sorted(HELM.glob("helm-v*/helm"))
    if not found:
        # Not a skip: on a machine set up by `make install-test` it is always there.
        pytest.fail("helm is not built: run scripts/install-helm.sh (make install-test does)")
    return found[-1]


def test_every_option_renders_to_flags_the_provider_accepts() -> None:
    rendered = subprocess.run(
        [str(_helm()), "template", "polysecret", str(CHART), "--kube-version", "1.34.0",
         "-f", str(REPO / "daemonset" / "ci-values-all.yaml")],
        check=True, capture_output=True, text=True,
    ).stdout
    args = _container_args(rendered)
    parsed = _parses(args)  # argparse exits on an unknown or misspelt flag
    assert parsed.vault_skip_tls_verify is True
    assert parsed.azure_skip_challenge_resource_check is True
    assert parsed.also_serve == ("aws", "azure", "vault")
    backend = re.compile(f"--({'|'.join(BACKEND_NAMES)})-")
    backend_flags = {a.split("=")[0] for a in args if backend.match(a)}
    expected = {f for f in _serve_flags() if backend.match(f)}
    assert backend_flags == expected


# -- a new backend: values only, no template ---------------------------------------------


def test_the_charts_backend_sections_are_the_providers_backends() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["backendSections"] == list(BACKEND_NAMES)
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert set(BACKEND_NAMES) <= set(schema["properties"])


def test_a_new_backend_renders_its_flags_from_values_alone(tmp_path: Path) -> None:
    """Adding a backend's section (and its name) to the values is enough: no template."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    values = (chart / "values.yaml").read_text()
    listed = f"backendSections: [{', '.join(BACKEND_NAMES)}]"
    assert listed in values
    values = values.replace(listed, listed[:-1] + ", demo]")
    (chart / "values.yaml").write_text(values + "demo:\n  someSetting: x\n  beQuiet: true\n")
    schema = json.loads((chart / "values.schema.json").read_text())
    schema["properties"]["demo"] = schema["properties"][BACKEND_NAMES[0]]
    (chart / "values.schema.json").write_text(json.dumps(schema))
    rendered = subprocess.run(
        [str(_helm()), "template", "polysecret", str(chart), "--kube-version", "1.34.0",
         "--set", "vault.addr=https://vault:8200"],
        check=True, capture_output=True, text=True,
    ).stdout
    args = _container_args(rendered)
    assert "--demo-some-setting=x" in args and "--demo-be-quiet" in args
    assert "--vault-addr=https://vault:8200" in args


# -- rendering: deterministic, strict, merged ------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """Rejects a mapping that holds a key twice, as kubectl's and Go's parsers do."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _template(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_helm()), "template", "polysecret", str(CHART), "--namespace", "kube-system",
         "--kube-version", "1.34.0", *args],
        check=check, capture_output=True, text=True,
    )  # fmt: skip


def _render(*args: str) -> list[dict[str, Any]]:
    """Every object of one rendering, parsed strictly."""
    docs = yaml.load_all(_template(*args).stdout, Loader=_StrictLoader)
    return [d for d in docs if d]


def _one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        o for o in objects
        if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]  # fmt: skip
    assert len(found) == 1, f"{len(found)} {kind} objects named {name}"
    return found[0]


def _pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    daemonsets = [o for o in objects if o["kind"] == "DaemonSet"]
    (ours,) = [d for d in daemonsets if d["spec"]["template"]["spec"]["containers"][0]["name"]
               == "provider"]  # fmt: skip
    spec: dict[str, Any] = ours["spec"]["template"]["spec"]
    return spec


ALL_VALUES = str(REPO / "daemonset" / "ci-values-all.yaml")


@pytest.mark.parametrize(
    "args",
    [(), ("-f", ALL_VALUES), ("--set", "provider.hmacKey.key=0123456789abcdef-stable")],
    ids=["default", "all-options", "hmac-key"],
)
def test_two_renders_are_identical(args: tuple[str, ...]) -> None:
    """GitOps tools render without `lookup`: nothing may be random per render."""
    first, second = _template(*args).stdout, _template(*args).stdout
    assert first == second


def test_security_context_overrides_merge_without_duplicate_keys() -> None:
    """An override changes its keys and keeps the hardening (was: appended, duplicate keys)."""
    objects = _render(
        "--set", "securityContext.runAsUser=65532", "--set", "securityContext.runAsGroup=65532",
        "--set", "securityContext.runAsNonRoot=true",
        "--set", "securityContext.seccompProfile.type=Localhost",
        "--set", "securityContext.seccompProfile.localhostProfile=profiles/polysecret.json",
        "--set", "podSecurityContext.fsGroup=65532",
    )  # fmt: skip
    pod = _pod(objects)
    container = pod["containers"][0]["securityContext"]
    assert container == {
        "runAsUser": 65532, "runAsGroup": 65532, "runAsNonRoot": True,
        "allowPrivilegeEscalation": False, "privileged": False, "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/polysecret.json"},
    }  # fmt: skip
    pod_context = {"seccompProfile": {"type": "RuntimeDefault"}, "fsGroup": 65532}
    assert pod["securityContext"] == pod_context


def test_strict_parse_of_every_option() -> None:
    objects = _render("-f", ALL_VALUES)
    kinds = {o["kind"] for o in objects}
    assert {"DaemonSet", "PodMonitor", "CSIDriver", "Secret", "Service"} <= kinds


FARGATE = {"key": "eks.amazonaws.com/compute-type", "operator": "NotIn", "values": ["fargate"]}
VIRTUAL = {"key": "type", "operator": "NotIn", "values": ["virtual-kubelet"]}


def _terms(pod: dict[str, Any]) -> list[dict[str, Any]]:
    node = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    return list(node["nodeSelectorTerms"])


def test_default_affinity_keeps_off_fargate_and_virtual_nodes() -> None:
    pod = _pod(_render())
    assert _terms(pod) == [{"matchExpressions": [FARGATE, VIRTUAL]}]
    assert pod["tolerations"] == [{"operator": "Exists"}]  # every taint still tolerated


def test_affinity_exclusion_joins_every_term_of_the_users_affinity() -> None:
    """Terms are ORed: an exclusion missing from one term would let the pod onto Fargate."""
    pod = _pod(_render("-f", ALL_VALUES))
    pools = [t["matchExpressions"][0]["values"] for t in _terms(pod)]
    assert pools == [["general"], ["batch"]]
    for term in _terms(pod):
        assert term["matchExpressions"][1:] == [FARGATE, VIRTUAL]
    anti = {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 1, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname"}}]}}
    pod = _pod(_render("--set-json", f"affinity={json.dumps(anti)}"))
    assert pod["affinity"]["podAntiAffinity"] == anti["podAntiAffinity"]
    assert _terms(pod) == [{"matchExpressions": [FARGATE, VIRTUAL]}]


def test_affinity_can_be_turned_off() -> None:
    assert "affinity" not in _pod(_render("--set", "excludeVirtualNodes=false"))


def test_hmac_key_from_values_or_existing_secret_never_random() -> None:
    key = "0123456789abcdef-stable"
    objects = _render("--set", f"provider.hmacKey.key={key}")
    secret = _one(objects, "Secret")
    assert base64.b64decode(secret["data"]["hmac-key"]).decode() == key
    pod = _pod(objects)
    assert "--hmac-key-file=/etc/polysecret/hmac/hmac-key" in pod["containers"][0]["args"]
    volume = next(v for v in pod["volumes"] if v["name"] == "hmac-key")
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    # A changed key rolls the pods (they read it at start); the same key never does.
    other = _render("--set", "provider.hmacKey.key=another-key-0123456789")
    annotations = _one(objects, "DaemonSet")["spec"]["template"]["metadata"]["annotations"]
    other_annotations = _one(other, "DaemonSet")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["checksum/hmac-secret"] != other_annotations["checksum/hmac-secret"]

    existing = _render("--set", "provider.hmacKey.existingSecret=my-hmac")
    assert not [o for o in existing if o["kind"] == "Secret"]
    volume = next(v for v in _pod(existing)["volumes"] if v["name"] == "hmac-key")
    assert volume["secret"]["secretName"] == "my-hmac"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--set", "provider.hmacKey.key=too-short"), "hmacKey/key"),
        (("--set", "provider.hmacKey.create=true"), "'create' not allowed"),
        (("--set", "secrets-store-csi-driver.install=true",
          "--set", "provider.socketDir=/run/elsewhere"), "is not a directory the driver reads"),
        (("--set", "dnsConfig.options[0].value=2"), "missing property 'name'"),
        (("--set", "backendSections={aws,azur}"), "the values have no azur: section"),
    ],
    ids=["short-key", "old-create", "socket-dir-mismatch", "dns-option-without-name",
         "backend-without-section"],
)  # fmt: skip
def test_values_the_chart_refuses(args: tuple[str, ...], message: str) -> None:
    proc = _template(*args, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


def test_driver_chart_as_dependency_set_up_for_every_backend() -> None:
    assert not [o for o in _render() if o["kind"] == "CSIDriver"]  # off by default
    objects = _render("--set", "secrets-store-csi-driver.install=true")
    csidriver = _one(objects, "CSIDriver")["spec"]
    assert [t["audience"] for t in csidriver["tokenRequests"]] == [
        "sts.amazonaws.com", "pods.eks.amazonaws.com", "api://AzureADTokenExchange", "vault",
    ]  # fmt: skip
    assert csidriver["requiresRepublish"] is True
    driver = next(
        o for o in objects
        if o["kind"] == "DaemonSet" and o["metadata"]["name"] != "polysecret"
    )  # fmt: skip
    driver_pod = driver["spec"]["template"]["spec"]
    args = next(c for c in driver_pod["containers"] if c["name"] == "secrets-store")["args"]
    assert "--provider-volume=/var/run/secrets-store-csi-providers" in args
    assert "--enable-secret-rotation=true" in args
    assert "--rotation-poll-interval=2m" in args
    assert _terms(driver_pod) == [{"matchExpressions": [FARGATE, VIRTUAL]}]
    # The driver reads the directory our pods write their sockets into.
    ours = next(v for v in _pod(objects)["volumes"] if v["name"] == "providers-dir")
    assert ours["hostPath"]["path"] == "/var/run/secrets-store-csi-providers"


def test_pod_monitor_scrapes_the_pods_metrics_port() -> None:
    assert not [o for o in _render() if o["kind"] == "PodMonitor"]
    objects = _render("--set", "metrics.podMonitor.enabled=true",
                      "--set", "metrics.podMonitor.labels.release=prom")  # fmt: skip
    monitor = _one(objects, "PodMonitor")
    daemonset = _one(objects, "DaemonSet")
    pod_labels = daemonset["spec"]["template"]["metadata"]["labels"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["metadata"]["namespace"] == "kube-system"
    ports = {p["name"]: p["containerPort"] for p in _pod(objects)["containers"][0]["ports"]}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics" and ports["metrics"] == 8095
    assert (endpoint["interval"], endpoint["scrapeTimeout"]) == ("30s", "10s")
    # No metrics endpoint, nothing to scrape.
    off = _render("--set", "metrics.podMonitor.enabled=true", "--set", "metrics.enabled=false")
    assert not [o for o in off if o["kind"] == "PodMonitor"]


def test_daemonset_annotations_env_from_and_dns_config() -> None:
    objects = _render("-f", ALL_VALUES)
    daemonset = _one(objects, "DaemonSet", "polysecret-all")
    assert daemonset["metadata"]["annotations"] == {"argocd.argoproj.io/sync-wave": "1"}
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["containers"][0]["envFrom"] == [
        {"configMapRef": {"name": "polysecret-proxy"}},
        {"secretRef": {"name": "polysecret-extra", "optional": True}},
    ]
    assert pod["dnsConfig"] == {"options": [{"name": "ndots", "value": "2"}]}
    plain = _one(_render(), "DaemonSet")
    assert "annotations" not in plain["metadata"]
    assert "envFrom" not in plain["spec"]["template"]["spec"]["containers"][0]
    assert "dnsConfig" not in plain["spec"]["template"]["spec"]
