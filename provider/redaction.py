"""Last line of defence against secrets in messages and logs.

Error messages are built from names only, but an SDK's own message (which we
sometimes quote) could echo something sensitive. Before any message leaves the
provider — as a gRPC status or a log line — every token and nodePublishSecretRef
value of the request, and anything shaped like a JWT, is replaced.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[REDACTED]"
# Three base64url segments, the first a JSON header: a JWT.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
# Don't redact tiny values: replacing "a" everywhere would mangle messages
# and a one-character secret cannot be protected by redaction anyway.
_MIN_SECRET_LEN = 4


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for value in sorted({s for s in secrets if len(s) >= _MIN_SECRET_LEN}, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return _JWT.sub(REDACTED, text)
