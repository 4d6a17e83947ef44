"""``FetchContext.call`` translates a backend's SDK errors once, at the call."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from provider.backends.base import FetchContext
from provider.codes import ErrorCode
from provider.errors import NotFound, PermissionDenied, ProviderError, translating
from provider.request import parse_mount_request
from provider.retry import Deadline, RetryPolicy


class SdkMissing(Exception):
    """What an SDK raises; its text may quote an answer (here: a fake secret)."""


def sdk_translate(exc: BaseException, *, subject: str, operation: str) -> ProviderError:
    if isinstance(exc, SdkMissing):
        return NotFound(f"{subject}: {operation} found nothing")
    return ProviderError(f"{subject}: {type(exc).__name__}")


def _ctx(pool: ThreadPoolExecutor) -> FetchContext:
    request = parse_mount_request(attributes=json.dumps({}), secrets="null", permission="420")
    return FetchContext(request=request, deadline=Deadline.after(5), executor=pool,
                        max_parallel=2, backend="test", translate=sdk_translate,
                        retry=RetryPolicy(attempts=1))


def test_call_passes_args_and_kwargs_like_run_in_executor() -> None:
    with ThreadPoolExecutor(2) as pool:
        got = asyncio.run(_ctx(pool).call(lambda a, b=0: a + b, 2, b=3, operation="Add"))
    assert got == 5


def test_sdk_error_is_translated_with_subject_and_not_chained() -> None:
    def read(name: str) -> str:
        raise SdkMissing(f"no secret {name}: value was hunter2")

    with ThreadPoolExecutor(2) as pool, pytest.raises(NotFound) as caught:
        asyncio.run(_ctx(pool).call(read, "db", operation="GetSecret", subject="object 'db'"))
    assert caught.value.code is ErrorCode.ObjectNotFound
    assert str(caught.value.message) == "object 'db': GetSecret found nothing"
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    assert "hunter2" not in str(caught.value)


def test_our_own_errors_pass_through_untranslated() -> None:
    def denied() -> None:
        raise PermissionDenied("object 'db': denied")

    with ThreadPoolExecutor(2) as pool, pytest.raises(PermissionDenied):
        asyncio.run(_ctx(pool).call(denied, operation="GetSecret"))


def test_translating_maps_an_unknown_error_through_the_translator() -> None:
    with pytest.raises(ProviderError) as caught, translating(
        sdk_translate, subject="object 'x'", operation="Read"
    ):
        raise KeyError("boom")
    assert caught.value.code is ErrorCode.Internal
    assert caught.value.message == "object 'x': KeyError"
