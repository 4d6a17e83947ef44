"""An idle ``polysecret serve`` has not imported what only a request needs.

Idle RSS is what every node pays (issue 16: at most 40 MiB). The metrics
library, PyYAML, the HTTP client stack, the template engine and every backend
SDK are imported by the first mount or scrape that needs them. This runs the
real entry point in its own interpreter and reads its ``sys.modules`` once the
socket is serving.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.ops.conftest import REPO

# A module here at idle costs every node memory: import it where a request needs it.
NOT_AT_IDLE = (
    "prometheus_client",  # provider.metricseries: first mount or scrape
    "yaml",  # provider.boundedyaml: first mount
    "jinja2",  # provider.derived.templates: first class with templates
    "difflib",  # provider.dialect: first misspelt key
    "http.server",  # not used: provider.health answers probes on socketserver
    "urllib.request",  # provider.kube: first Kubernetes API read
    "email",  # urllib.request's, and provider.retry's for an HTTP-date Retry-After
    "boto3",
    "botocore",
    "hvac",
    "requests",
    "urllib3",
    "httptools",  # provider.backends.http1: first Vault mount
    "shutil",  # provider.writer (`polysecret mount`); it brings bz2 and lzma: 0.5 MiB
    "bz2",
    "lzma",
    "random",  # provider.retry: the first retry's jitter (0.2 MiB)
    "azure.core",
    "azure.identity",
    "msal",
)

# Run with -S: no .pth file runs (a sandbox's may import certifi, and with it
# shutil); the site directories are put on the path by hand. What start-up
# imported anyway is not the provider's doing.
SERVE_AND_LIST = """
import site, sys
sys.path.extend(site.getsitepackages())
ours_from = set(sys.modules)
import json, os, threading, time
from pathlib import Path

def report() -> None:
    sock = Path(sys.argv[1]) / "polysecret.sock"
    deadline = time.monotonic() + 30
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # the HTTP endpoints and the health state are set after the socket
    print(json.dumps(sorted(set(sys.modules) - ours_from)), flush=True)
    os.kill(os.getpid(), 15)

threading.Thread(target=report, daemon=True).start()
from provider.cli import main
sys.exit(main(["serve", "--socket-dir", sys.argv[1], "--health-addr", "127.0.0.1:0",
               "--metrics-addr", "127.0.0.1:0", "--log-level", "warning"]))
"""


def test_idle_serve_imports_nothing_a_request_first_needs(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-S", "-c", SERVE_AND_LIST, str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    modules = set(json.loads(done.stdout.splitlines()[0]))
    # The serving part is there (the list is the real server's).
    assert {"provider.app", "provider.server", "grpc.aio", "socketserver"} <= modules
    loaded = sorted(
        m for m in modules for lazy in NOT_AT_IDLE if m == lazy or m.startswith(lazy + ".")
    )
    assert loaded == []
