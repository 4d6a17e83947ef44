"""The provider's one error tree.

Every failure a Mount can end in is one of these classes. Backends translate
their SDK's exceptions into them at the boundary (``raise ... from exc``) and the
gRPC layer turns them into a status in exactly one place (``provider.status``).
The status message becomes the pod's ``FailedMount`` event, so each message
starts with a short stable code (``provider.codes.ErrorCode``, the table in
docs/errors.md) and says what to fix.

    ProviderError                       (INTERNAL)       Internal
     +-- InvalidRequest                 (INVALID_ARGUMENT)
     |    +-- InvalidParameters         one message listing every problem
     |    +-- InvalidPath               a file path breaks the driver's rules
     |    +-- MissingToken              no service-account token for an audience
     +-- PermissionDenied               (PERMISSION_DENIED) AccessDenied / AuthFailed
     +-- NotFound                       (NOT_FOUND)      ObjectNotFound
     +-- Unavailable                    (UNAVAILABLE)    BackendUnavailable / Throttled
     +-- DeadlineExceeded               (DEADLINE_EXCEEDED)

Messages are built from names and parameters only. They must never carry a
secret value or a token; ``provider.redaction`` scrubs them once more at the
boundary as a second line of defence.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol

from provider.codes import ErrorCode


class ProviderError(Exception):
    """Base class: an unexpected failure inside the provider."""

    code: ErrorCode = ErrorCode.Internal

    def __init__(self, message: str, *, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class InvalidRequest(ProviderError):
    """The request or the SecretProviderClass is malformed; retrying cannot help."""

    code = ErrorCode.InvalidRequest


class InvalidParameters(InvalidRequest):
    """One or more parameters are wrong; every problem is reported at once.

    ``problems`` keeps the whole list (the provider logs it); the message is
    bounded (:func:`summarize`).
    """

    code = ErrorCode.InvalidParameters

    def __init__(self, problems: Iterable[str], *, code: ErrorCode | None = None) -> None:
        self.problems = tuple(problems)
        super().__init__(summarize(self.problems), code=code)


class InvalidPath(InvalidRequest):
    """A file path the driver would reject (or that would escape the volume)."""

    code = ErrorCode.InvalidPath


class MissingToken(InvalidRequest):
    """The driver sent no service-account token for an audience we need."""

    code = ErrorCode.MissingToken


class PermissionDenied(ProviderError):
    """The backend refused the pod's identity (authentication or authorisation)."""

    code = ErrorCode.AccessDenied


class NotFound(ProviderError):
    """The object (or the requested version of it) does not exist."""

    code = ErrorCode.ObjectNotFound


class Unavailable(ProviderError):
    """A transient fault: throttling, network error, server error. Retried."""

    code = ErrorCode.BackendUnavailable

    def __init__(
        self, message: str, *, code: ErrorCode | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, code=code)
        # Seconds the server asked us to wait (HTTP Retry-After), if it said.
        self.retry_after = retry_after


class DeadlineExceeded(ProviderError):
    """The call's deadline ran out before the objects could be fetched."""

    code = ErrorCode.DeadlineExceeded


# A backend's own error text, quoted into our messages: long enough to say what
# the server objected to, short enough for a pod event.
MAX_QUOTE = 300


def quote_backend_message(message: str) -> str:
    """A backend's error text on one line, bounded to MAX_QUOTE characters."""
    message = " ".join(message.split())
    return message if len(message) <= MAX_QUOTE else message[: MAX_QUOTE - 3] + "..."


# The status message travels in gRPC metadata (clients refuse more than 8 KiB
# by default, 16 KiB hard) and becomes the pod's FailedMount event: a few
# problems of bounded length, then how many more there are.
MAX_PROBLEM = 400
MAX_MESSAGE = 3072


def clip(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` UTF-8 bytes, marked with "..." when cut."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", "ignore") + "..."


def summarize(problems: Iterable[str], limit: int = MAX_MESSAGE) -> str:
    """Problems joined by "; ": each once, each clipped, within ``limit`` bytes.

    What does not fit is counted ("... and 7 more"): the provider's log has
    them all.
    """
    unique = list(dict.fromkeys(problems))
    shown: list[str] = []
    used = 0
    for index, problem in enumerate(unique):
        item = clip(problem, MAX_PROBLEM)
        size = len(item.encode("utf-8", "surrogatepass")) + 2
        more = len(unique) - index - 1
        # Room for the "... and N more" tail unless this is the last one.
        if shown and used + size + (80 if more else 0) > limit:
            shown.append(f"... and {len(unique) - index} more (all in the provider's log)")
            break
        shown.append(item)
        used += size
    return "; ".join(shown)


class Problems:
    """Collects validation problems so that one error can list all of them."""

    def __init__(self) -> None:
        self._items: list[str] = []

    def add(self, message: str) -> None:
        self._items.append(message)

    def extend(self, messages: Iterable[str]) -> None:
        self._items.extend(messages)

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def raise_if_any(self) -> None:
        if self._items:
            raise InvalidParameters(self._items)


class Translator(Protocol):
    """A backend's one mapping of its SDK's exceptions onto this tree (its ``errors.translate``)."""

    def __call__(self, exc: BaseException, *, subject: str, operation: str) -> ProviderError: ...


@contextmanager
def translating(translate: Translator, *, subject: str, operation: str) -> Iterator[None]:
    """Raise what the block raises as a :class:`ProviderError` (httpx's exception-mapping shape).

    The one place a backend's SDK exceptions are translated: ``FetchContext.call``
    wraps every backend call in it, so no backend repeats ``try/except translate``.
    Our own errors pass through; the SDK's exception is not chained (``from None``)
    because its text may quote an answer holding a secret.
    """
    try:
        yield
    except ProviderError:
        raise
    except Exception as exc:  # translate decides; anything it does not know is Internal
        raise translate(exc, subject=subject, operation=operation) from None
