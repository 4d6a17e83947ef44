"""A real moto server (AWS Secrets Manager, SSM, STS over HTTP) for the tests."""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

ACCOUNT = "111122223333"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/app-role"
REGION = "us-east-1"
FAILOVER_REGION = "us-west-2"


@contextmanager
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    # werkzeug logs every request at INFO from the server's threads, even after
    # a test has ended and pytest has closed the stream its capture wrote to.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def reset(url: str) -> None:
    req = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=10).read()


def seed_client(url: str, service: str, region: str = REGION) -> Any:
    """A client acting in the role's account (moto puts assumed-role callers there)."""
    import boto3

    sts = boto3.client(
        "sts",
        region_name=region,
        endpoint_url=url,
        aws_access_key_id="seed",
        aws_secret_access_key="seed",
    )
    creds = sts.assume_role(RoleArn=ROLE_ARN, RoleSessionName="seed")["Credentials"]
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=url,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
