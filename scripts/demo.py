"""The demo behind `make demo`: a local AWS, the provider, one real mount.

Starts a moto server (real AWS APIs over HTTP on 127.0.0.1), seeds the secrets
that daemonset/examples/aws-secretproviderclass.yaml names, starts
`python -m provider serve` on a temporary socket directory, mounts the example
with `python -m provider mount` exactly as the driver would, and shows the
files. Everything stops at the end.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPC = ROOT / "daemonset/examples/aws-secretproviderclass.yaml"
ROLE = "arn:aws:iam::111122223333:role/app-role"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(path: Path, proc: subprocess.Popen[bytes], what: str) -> None:
    for _ in range(200):
        if path.exists():
            return
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited early")
        time.sleep(0.05)
    raise SystemExit(f"{what} did not start")


def fake_pod_token() -> str:
    """A JWT-shaped service-account token (moto's STS accepts any web identity token)."""

    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    claims = {"sub": "system:serviceaccount:default:app", "aud": ["sts.amazonaws.com"]}
    return f"{part({'alg': 'RS256'})}.{part(claims)}.demo-signature"


def seed(url: str) -> None:
    import boto3

    sts = boto3.client(
        "sts",
        region_name=REGION,
        endpoint_url=url,
        aws_access_key_id="demo",
        aws_secret_access_key="demo",
    )
    c = sts.assume_role(RoleArn=ROLE, RoleSessionName="seed")["Credentials"]
    kw = {
        "region_name": REGION,
        "endpoint_url": url,
        "aws_access_key_id": c["AccessKeyId"],
        "aws_secret_access_key": c["SecretAccessKey"],
        "aws_session_token": c["SessionToken"],
    }
    sm = boto3.client("secretsmanager", **kw)
    sm.create_secret(
        Name="prod/db/credentials",
        SecretString=json.dumps({"username": "app", "password": "s3cr3t-demo"}),
    )
    sm.create_secret(Name="prod/api/token", SecretString="demo-api-token-123")
    ssm = boto3.client("ssm", **kw)
    ssm.put_parameter(Name="/prod/app/feature-flags", Value="beta,dark-mode", Type="StringList")
    ssm.put_parameter(
        Name="/prod/app/tls-ca",
        Type="SecureString",
        Value="-----BEGIN CERTIFICATE-----\nMIIB...demo...\n-----END CERTIFICATE-----\n",
    )


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="polysecret-demo-"))
    sockets, target = work / "sockets", work / "mnt"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "unused", "AWS_SECRET_ACCESS_KEY": "unused"}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        print(f"== starting a local AWS (moto server) on {url}")
        moto = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(moto)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        seed(url)
        print("== starting the provider on", sockets / "polysecret.sock")
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "provider",
                "serve",
                "--socket-dir",
                str(sockets),
                "--aws-endpoint-url",
                url,
                "--aws-region",
                REGION,
                "--log-format",
                "text",
            ],
            env=env,
            cwd=ROOT,
        )
        procs.append(server)
        wait_for(sockets / "polysecret.sock", server, "the provider")
        print(f"== mounting {SPC.relative_to(ROOT)} into {target}")
        rc = subprocess.call(
            [
                sys.executable,
                "-m",
                "provider",
                "mount",
                str(SPC),
                "--socket-dir",
                str(sockets),
                "--target",
                str(target),
                "--namespace",
                "default",
                "--service-account",
                "app",
                "--pod-name",
                "demo-app",
                "--token",
                f"sts.amazonaws.com={fake_pod_token()}",
            ],
            cwd=ROOT,
        )
        if rc != 0:
            return rc
        print("\n== the volume, as the pod sees it")
        subprocess.call(["ls", "-la", str(target)])
        for f in sorted(p for p in target.iterdir() if not p.name.startswith("..")):
            print(f"\n--- {f.name} (mode {oct(f.stat().st_mode & 0o777)})")
            print(f.read_text(), end="" if f.read_text().endswith("\n") else "\n")
        return 0
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    sys.exit(main())
