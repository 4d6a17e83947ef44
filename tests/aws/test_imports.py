"""An AWS mount loads botocore only: not boto3 (resources, S3 helpers: 2.3 MiB, issue 16).

The provider runs in its own interpreter (as tests/ops/test_idle_imports.py runs
``serve``), mounts a secret and a parameter from the session's moto, and
reports its ``sys.modules``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.aws

REPO = Path(__file__).resolve().parents[2]

MOUNT_AND_LIST = """
import json, sys, tempfile
from pathlib import Path

from provider.backends.aws import AwsSettings
from tests.aws.conftest import attrs
from tests.support.moto import REGION
from tests.support.running import RunningProvider, files_of, settings_for

objects = ("- objectName: db\\n  objectType: secretsmanager\\n"
           "- objectName: /app/pw\\n  objectType: ssmparameter\\n")
settings = AwsSettings(region=REGION, endpoint_url=sys.argv[1])
with tempfile.TemporaryDirectory(prefix="psi-", dir="/tmp") as sockets:
    with RunningProvider(settings_for(Path(sockets), {"aws": settings})) as provider:
        files = files_of(provider.mount(attrs(objects)))
print(json.dumps({"files": {k: v[1].decode() for k, v in files.items()},
                  "modules": sorted(sys.modules)}))
"""


def test_an_aws_mount_loads_botocore_but_not_boto3(moto_url: str, sm: Any, ssm: Any) -> None:
    sm.create_secret(Name="db", SecretString="s3cret")
    ssm.put_parameter(Name="/app/pw", Value="hunter2", Type="SecureString")
    done = subprocess.run(
        [sys.executable, "-c", MOUNT_AND_LIST, moto_url],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.splitlines()[-1])
    # The mount really read both services (through STS first).
    assert report["files"] == {"db": "s3cret", "_app_pw": "hunter2"}
    modules = set(report["modules"])
    assert {"botocore.client", "provider.backends.aws.models"} <= modules
    assert sorted(m for m in modules if m == "boto3" or m.startswith("boto3.")) == []
