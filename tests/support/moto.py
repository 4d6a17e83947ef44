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
def moto_server(*, keep_alive: bool = False) -> Iterator[str]:
    """moto's server app in a thread (moto's own werkzeug server); its URL.

    werkzeug ends every answer with ``Connection: close``, so every request
    opens a new TCP connection, unlike AWS's endpoints, which keep connections
    open. ``keep_alive=True`` serves the same app on waitress, which keeps
    them: the benchmarks use it to compare clients as they run against AWS.
    """
    from moto.server import ThreadedMotoServer

    # werkzeug logs every request at INFO from the server's threads, even after
    # a test has ended and pytest has closed the stream its capture wrote to.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # waitress warns whenever a request waits for one of its threads.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    server = _KeepAliveMotoServer() if keep_alive else \
        ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


class _KeepAliveMotoServer:
    """moto's app on waitress, which keeps HTTP/1.1 connections open (werkzeug cannot:
    after each answer it drains the socket, which would swallow the next request)."""

    def __init__(self) -> None:
        import threading

        from moto.server import DomainDispatcherApplication, create_backend_app
        from waitress.server import create_server

        app = DomainDispatcherApplication(create_backend_app)
        # 8 threads answer at once; waitress logs no request (no access log).
        self._server: Any = create_server(app, host="127.0.0.1", port=0, threads=8,
                                          ident="moto")
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def get_host_and_port(self) -> tuple[str, int]:
        host, port = self._server.socket.getsockname()[:2]
        return str(host), int(port)

    def stop(self) -> None:
        self._server.close()
        self._thread.join(timeout=10)


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
