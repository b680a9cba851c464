"""Logging: one JSON object per line when `LOG_FORMAT=json`, plain text otherwise.

`ContextFilter` (on the console handler) adds the request's context to every record: the request
id, user, app (set by `ops.middleware.RequestLogMiddleware`, or by whoever calls `bind()`), and
whatever a caller passes in `extra=` among FIELDS (collector, capture_id, state, reason,
duration_ms...). It also scrubs every record: anything shaped like a key secret (`clct_...`, an
`Authorization: Key/Bearer ...` value) becomes `[secret]`, a bytes argument becomes
`<N bytes>` and a long base64 run (image bytes) `<base64 N chars>`. Nothing here logs request
bodies.
"""

from __future__ import annotations

import contextvars
import logging
import re

from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

from . import logscrub

FIELDS = (
    "request_id",
    "user",
    "app",
    "collector",
    "capture_id",
    "state",
    "reason",
    "duration_ms",
    "method",
    "path",
    "status",
    "transport",
    "rpc",
)

_context: contextvars.ContextVar[dict | None] = contextvars.ContextVar("log_context", default=None)

# A bare "Key <token>" / "Bearer <token>" outside an Authorization header (key secrets and
# Authorization values are core/logscrub.py's, shared with its filter).
_BARE_TOKEN_RE = re.compile(r"(\b(?:Key|Bearer)\s+)[A-Za-z0-9_\-.=]{16,}")
_BASE64_RE = re.compile(r"[A-Za-z0-9+/]{200,}={0,2}")


def scrub(text: str) -> str:
    """The text with secrets and long base64 runs (image bytes) replaced."""
    if not text:
        return text
    text = _BARE_TOKEN_RE.sub(r"\1" + logscrub.REDACTED_VALUE, logscrub.scrub(text))
    return _BASE64_RE.sub(lambda m: f"<base64 {len(m.group(0))} chars>", text)


def _clean_arg(value):
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if isinstance(value, str):
        return scrub(value)
    return value


def bind(**fields) -> contextvars.Token:
    """Add fields to the current context (a request, a task); returns a token for `reset`."""
    current = dict(_context.get() or {})
    current.update({k: v for k, v in fields.items() if v not in (None, "")})
    return _context.set(current)


def reset(token: contextvars.Token) -> None:
    _context.reset(token)


def context() -> dict:
    return dict(_context.get() or {})


class ContextFilter(logging.Filter):
    """Adds the bound context to the record and scrubs its message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_context.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        try:
            if isinstance(record.args, tuple):
                record.args = tuple(_clean_arg(a) for a in record.args)
            elif isinstance(record.args, dict):
                record.args = {k: _clean_arg(v) for k, v in record.args.items()}
            # The whole message once formatted: a secret split between the format string and
            # an argument ("Authorization: Key %s") is caught too.
            record.msg = scrub(record.getMessage())
            record.args = None
            for key in FIELDS:
                value = getattr(record, key, None)
                if isinstance(value, str | bytes | bytearray):
                    setattr(record, key, _clean_arg(value))
        except Exception:
            pass
        return True


class JsonFormatter(_BaseJsonFormatter):
    """python-json-logger with fixed names: time, level, logger, message, and FIELDS present."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault(
            "rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"}
        )
        kwargs.setdefault("timestamp", False)
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s", *args, **kwargs)

    def add_fields(self, log_record, record, message_dict) -> None:
        super().add_fields(log_record, record, message_dict)
        for key in list(log_record):
            value = log_record[key]
            if isinstance(value, bytes | bytearray | memoryview):
                log_record[key] = f"<{len(value)} bytes>"
            elif isinstance(value, str) and key not in ("time", "level", "logger"):
                log_record[key] = scrub(value)

    def formatException(self, ei) -> str:
        return scrub(super().formatException(ei))
