"""Structured logging: JSON lines by default, plain text on request.

One line per Mount is written by the server (pod, class, backend, objects,
duration, outcome). Nothing sensitive is passed to the logger in the first
place; the formatter still runs every message through the JWT scrubber.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from types import TracebackType
from typing import Any

from provider.redaction import redact

# Attributes every LogRecord has; anything else was passed with `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


# Innermost frames kept of a traceback: enough to find a bug, short in a log.
_FRAMES = 8


def _where(tb: TracebackType | None) -> str:
    """Where an exception was raised: ``file:line in function`` per frame.

    Only locations, never the exception's text or the source lines: a bug's
    message (a KeyError of a secret's key, a formatted value) may quote
    anything, but a file name and a line number cannot.
    """
    frames = traceback.extract_tb(tb)[-_FRAMES:]
    return " <- ".join(
        f"{'/'.join(f.filename.split('/')[-2:])}:{f.lineno} in {f.name}" for f in reversed(frames)
    )


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        entry.update(_extras(record))
        if record.exc_info and record.exc_info[0] is not None:
            # The type and where it was raised: an exception's text may quote anything.
            entry["exception"] = record.exc_info[0].__name__
            entry["where"] = _where(record.exc_info[2])
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = (
            f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(record.created))} "
            f"{record.levelname:<7} {record.name}: {redact(record.getMessage())}"
        )
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        if record.exc_info and record.exc_info[0] is not None:
            where = _where(record.exc_info[2])
            extras += f" exception={record.exc_info[0].__name__} where={where!r}"
        return f"{base} {extras}".rstrip()


def configure(level: str = "info", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # SDKs log request details (URLs, sometimes headers) at DEBUG: keep them quiet.
    for noisy in ("botocore", "boto3", "urllib3", "azure", "hvac", "grpc"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
