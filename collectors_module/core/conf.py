"""Tunables of the core app, read from `django.conf.settings` at call time (so tests and
operators can change them without re-importing modules). Defaults live in settings.py."""

from __future__ import annotations

from django.conf import settings


def _as_list(value) -> list[str]:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return [str(item).strip() for item in (value or []) if str(item).strip()]


def safe_fetch_allowed_hosts() -> list[str]:
    """Operator allow-list for the SSRF-safe fetcher: `host[:port]` entries. A listed host may use
    its listed port (or the default ports when none is given) and may resolve to any address,
    loopback included."""
    return _as_list(settings.SAFE_FETCH_ALLOWED_HOSTS)


def safe_fetch_connect_timeout() -> float:
    return float(settings.SAFE_FETCH_CONNECT_TIMEOUT)


def safe_fetch_max_redirects() -> int:
    return int(settings.SAFE_FETCH_MAX_REDIRECTS)


def safe_fetch_max_bytes() -> int:
    """Byte cap of one fetched body (default: the image byte limit)."""
    return int(settings.SAFE_FETCH_MAX_BYTES)


def safe_fetch_ca_file() -> str:
    """Extra CA bundle for HTTPS fetches (operator setting; empty = the system store)."""
    return str(settings.SAFE_FETCH_CA_FILE or "")
