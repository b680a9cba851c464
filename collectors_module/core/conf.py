"""Tunables of the core app (read through django.conf.settings, with environment overrides).

Read at call time, so tests and operators can change them without re-importing modules.
"""

from __future__ import annotations

import os

from django.conf import settings


def _setting(name: str, default):
    value = getattr(settings, name, None)
    if value is not None:
        return value
    return os.environ.get(name, default)


def _as_list(value) -> list[str]:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return [str(item).strip() for item in (value or []) if str(item).strip()]


def safe_fetch_allowed_hosts() -> list[str]:
    """Operator allow-list for the SSRF-safe fetcher: `host[:port]` entries (setting or env
    SAFE_FETCH_ALLOWED_HOSTS, comma separated). A listed host may use its listed port (or the
    default ports when none is given) and may resolve to any address, loopback included."""
    return _as_list(_setting("SAFE_FETCH_ALLOWED_HOSTS", ""))


def safe_fetch_connect_timeout() -> float:
    return float(_setting("SAFE_FETCH_CONNECT_TIMEOUT", 3.0))


def safe_fetch_max_redirects() -> int:
    return int(_setting("SAFE_FETCH_MAX_REDIRECTS", 3))


def safe_fetch_max_bytes() -> int:
    """Byte cap of one fetched body (default: the image byte limit)."""
    default = getattr(settings, "MAX_IMAGE_BYTES", 20 * 10**6)
    return int(_setting("SAFE_FETCH_MAX_BYTES", default))


def safe_fetch_ca_file() -> str:
    """Extra CA bundle for HTTPS fetches (operator setting; empty = the system store)."""
    return str(_setting("SAFE_FETCH_CA_FILE", "") or "")
