"""A logging filter that blanks anything shaped like an API key secret.

Secrets belong only in the Authorization header, and no path of the API takes one, but a caller
may still paste a secret into a URL or a field that ends up in a log line (Django's "Not Found:
/v2/users/.../keys/<secret>", an exception message, a bad request). Installed on every handler in
settings.LOGGING, so no record leaves the process with a live secret in it.
"""

from __future__ import annotations

import logging
import re

from .ids import SECRET_PREFIX

REDACTED_VALUE = "[REDACTED]"
REDACTED = SECRET_PREFIX + REDACTED_VALUE
# new_secret(): the prefix and token_urlsafe(32) (43 characters); shorter tails are scrubbed too,
# a truncated secret still narrows a guess.
_SECRET = re.compile(re.escape(SECRET_PREFIX) + r"[A-Za-z0-9_\-]{8,}")
# Authorization header values, whatever the secret looks like ("Key abc", "Bearer abc").
_AUTH = re.compile(r"(?i)\b(authorization[\"']?\s*[:=]\s*[\"']?(?:key|bearer|basic)\s+)[^\s\"',}]+")


def scrub(text: str) -> str:
    if SECRET_PREFIX not in text and "uthorization" not in text.lower():
        return text
    return _AUTH.sub(r"\1" + REDACTED_VALUE, _SECRET.sub(REDACTED, text))


class ScrubSecretsFilter(logging.Filter):
    """Rewrites the record's message (with its arguments merged in) and exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler to report
            return True
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True
