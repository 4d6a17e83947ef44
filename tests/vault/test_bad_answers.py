"""Answers that are not what Vault sends, and Retry-After, through a proxy to OpenBao.

A 200 that is not JSON, not an object, without ``data`` (or a KV v2 answer
without ``data.data`` or its version), or cut short must be retried and then be
UNAVAILABLE: never an empty or ``null`` file, never NOT_FOUND or AuthFailed.
Messages never quote the value or the pod's token.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import grpc
import pytest

from provider.backends.vault import VaultSettings
from tests.support.faultproxy import Fault, FaultProxy, Request, http_date
from tests.support.running import RunningProvider, files_of, versions_of
from tests.vault.conftest import KNOWN_SECRET, ProviderFactory, Vault

pytestmark = pytest.mark.vault

Attrs = Callable[..., dict[str, str]]
APP = "- objectName: pw\n  secretPath: secret/data/app\n  secretKey: password"
WHOLE = "- objectName: all\n  secretPath: secret/data/app"
HTML = {"Content-Type": "text/html"}


def path_has(part: str) -> Callable[[Request], bool]:
    return lambda request: part in request.path


READ = path_has("/v1/secret/data/app")
LOGIN = path_has("/v1/auth/")


def ok(body: bytes, headers: dict[str, str] | None = None) -> Fault:
    """A 200 with ``body`` (JSON unless ``headers`` say) instead of the real answer."""
    return Fault.answer(200, body, headers)


@pytest.fixture
def proxy(vault: Vault) -> Iterator[FaultProxy]:
    with FaultProxy.in_front_of(vault.address) as running:
        yield running


@pytest.fixture
def via_proxy(make_provider: ProviderFactory, proxy: FaultProxy) -> RunningProvider:
    return make_provider(VaultSettings(address=proxy.url()), mount_timeout=8.0)


def spc(objects: str = APP) -> dict[str, str]:
    return {"roleName": "app", "objects": objects}


def _assert_clean(err: grpc.RpcError, attributes: dict[str, str]) -> None:
    details = err.details() or ""
    assert KNOWN_SECRET not in details
    tokens = json.loads(attributes["csi.storage.k8s.io/serviceAccount.tokens"])
    jwt = tokens["vault"]["token"]
    assert jwt not in details and jwt.split(".")[1][:20] not in details


BAD_READS = {
    "not-json": ok(b"<html>gateway</html>", HTML),
    "json-list": ok(b"[1,2,3]"),
    "json-string": ok(b'"x"'),
    "no-data": ok(b'{"request_id":"r","warnings":null}'),
    "data-null": ok(b'{"data":null}'),
    "kv2-without-data": ok(b'{"data":{"data":null,"metadata":{"version":3}}}'),
    "kv2-without-version": ok(
        b'{"data":{"data":{"password":"x"},"metadata":{"created_time":"t"}}}'
    ),
    "cut-in-half": Fault.cut(0.5),
    "cut-connection": Fault.truncated(0.5),
}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param((objects, answer), id=f"{name}-{shape}")
        for name, answer in BAD_READS.items()
        for shape, objects in (("secretKey", APP), ("whole-response", WHOLE))
    ],
)
def test_unusable_read_is_retried_then_unavailable(
    via_proxy: RunningProvider, proxy: FaultProxy, attrs: Attrs, case: tuple[str, Fault],
    caplog: pytest.LogCaptureFixture,
) -> None:
    objects, answer = case
    caplog.set_level(logging.DEBUG, logger="provider")
    proxy.set(replace(answer, match=READ))
    attributes = attrs(spc(objects))
    err = via_proxy.mount_error(attributes)
    assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()
    assert err.details().startswith("BackendUnavailable: object "), err.details()
    assert "secret/data/app" in err.details()
    _assert_clean(err, attributes)
    assert KNOWN_SECRET not in caplog.text  # a cut body holds it: never logged
    assert proxy.count(match=READ, faulted=True) == 4  # every attempt of the retry policy
    proxy.clear()  # the fault clears: the next mount reads at once
    assert via_proxy.mount(attributes).files


@pytest.mark.parametrize("answer", BAD_READS.values(), ids=BAD_READS.keys())
def test_one_unusable_read_then_the_real_one(
    via_proxy: RunningProvider, proxy: FaultProxy, attrs: Attrs, answer: Fault
) -> None:
    proxy.set(replace(answer, match=READ, times=1))
    response = via_proxy.mount(attrs(spc()))
    assert files_of(response) == {"pw": (0o644, KNOWN_SECRET.encode())}
    assert versions_of(response)["pw"].isdigit()  # the KV v2 version, not an HMAC of junk
    assert proxy.count(match=READ, faulted=True) == 1 and proxy.count(match=READ) == 2


BAD_LOGINS = {
    "not-json": ok(b"<html>login page</html>", HTML),
    "json-list": ok(b"[]"),
    "no-auth": ok(b'{"request_id":"r","data":null}'),
    "cut-in-half": Fault.cut(0.5),
}


@pytest.mark.parametrize("answer", BAD_LOGINS.values(), ids=BAD_LOGINS.keys())
def test_unusable_login_is_unavailable_not_auth_failed(
    via_proxy: RunningProvider, proxy: FaultProxy, attrs: Attrs, answer: Fault
) -> None:
    proxy.set(replace(answer, match=LOGIN))
    attributes = attrs(spc())
    err = via_proxy.mount_error(attributes)
    assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()
    assert "login to auth/" in err.details() and "role 'app'" in err.details()
    _assert_clean(err, attributes)
    assert proxy.count(match=LOGIN, faulted=True) == 4
    proxy.clear()
    assert files_of(via_proxy.mount(attributes)) == {"pw": (0o644, KNOWN_SECRET.encode())}


def _busy(status: int, retry_after: str, **kw: int) -> Fault:
    return Fault.throttle(
        status, retry_after, b'{"errors":["rate limit quota exceeded"]}', match=READ, **kw
    )


@pytest.mark.parametrize(
    "retry_after", [lambda: "1", lambda: http_date(2)], ids=["delta-seconds", "http-date"]
)
@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(
    via_proxy: RunningProvider, proxy: FaultProxy, attrs: Attrs,
    retry_after: Callable[[], str], status: int,
) -> None:
    attributes = attrs(spc())
    via_proxy.mount(attributes)  # warm: the login is not part of the measured gap
    proxy.reset_counts()
    proxy.set(_busy(status, retry_after(), times=1))
    assert files_of(via_proxy.mount(attributes)) == {"pw": (0o644, KNOWN_SECRET.encode())}
    first, second = (seen.at for seen in proxy.seen(READ))
    assert 0.95 <= second - first < 3.0, second - first  # backoff alone is ~0.1 s


def test_retry_after_beyond_the_deadline_fails_at_once(
    make_provider: ProviderFactory, proxy: FaultProxy, attrs: Attrs
) -> None:
    running = make_provider(VaultSettings(address=proxy.url()), mount_timeout=5.0)
    attributes = attrs(spc())
    running.mount(attributes)
    proxy.reset_counts()
    proxy.set(_busy(429, "30"))
    started = time.monotonic()
    err = running.mount_error(attributes)
    assert time.monotonic() - started < 2.5
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert err.details().startswith("Throttled: ")
    assert proxy.count(match=READ, faulted=True) == 1
