"""One check for the "every SDK exception is mapped" tests of the three backends.

Why: a translation that ends in the catch-all still returns a ProviderError,
so "it returned a provider error" can never fail. The catch-all is INTERNAL,
which the driver shows as a provider bug and never retries: a mapped class
must land anywhere but there.
"""

from __future__ import annotations

import grpc

from provider.errors import ProviderError
from provider.status import status_code


def assert_mapped(err: ProviderError, source: type[BaseException], subject: str) -> None:
    """``err``, translated from an instance of ``source``, is a deliberate mapping."""
    name = source.__name__
    assert isinstance(err, ProviderError), name
    assert type(err) is not ProviderError and err.code != "Internal", (
        f"{name} falls through to the catch-all: {err}"
    )
    assert status_code(err) is not grpc.StatusCode.INTERNAL, f"{name} -> INTERNAL: {err}"
    assert "unexpected" not in err.message, f"{name} reaches a generic fallback: {err}"
    assert str(err).startswith(f"{err.code}: {subject}"), f"{name}: {err}"
