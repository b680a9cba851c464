"""Throttles for guessing: failed sign-ins per account and per client address, invalid API keys
per client address (finding 8 of issue 15).

Counters are django-ratelimit's fixed windows in a cache shared by every process (the "throttle"
cache, Redis at THROTTLE_REDIS_URL). Only failures are counted and only failures are checked:
a request with a valid key never touches the counters, so it is never slowed, even from an
address that is sending bad keys. A sign-in is checked before the password is: once an account
or an address is over its limit, even the right password is refused until the window ends.
If the cache cannot be reached the throttles fail open (sign-in and keys work, unthrottled):
an outage of Redis must not lock every user out.
"""

from __future__ import annotations

import ipaddress
import logging

from django.conf import settings
from django_ratelimit.core import get_usage

log = logging.getLogger("collectors.throttle")

LOGIN_ACCOUNT = "login-account"
LOGIN_ADDRESS = "login-address"
BAD_KEY_ADDRESS = "bad-key-address"


def client_address(meta) -> str:
    """The client's address from a request's META (THROTTLE_CLIENT_ADDRESS_HEADER behind a
    proxy that sets it; REMOTE_ADDR otherwise)."""
    header = settings.THROTTLE_CLIENT_ADDRESS_HEADER
    value = (meta.get(header) if header else "") or meta.get("REMOTE_ADDR") or ""
    return value.split(",")[-1].strip()  # the last hop: the one our proxy appended


def grpc_client_address(metadata, peer: str) -> str:
    """The client's address of a gRPC call: the THROTTLE_GRPC_CLIENT_ADDRESS_METADATA entry set by
    a proxy in front (its last hop, as for REST), else the peer address."""
    key = (settings.THROTTLE_GRPC_CLIENT_ADDRESS_METADATA or "").strip().lower()
    if key:
        values = [v for k, v in metadata or () if k == key and isinstance(v, str)]
        if values:
            hop = values[-1].split(",")[-1].strip()
            if hop:
                return hop[:64]
    return grpc_peer_address(peer)


def grpc_peer_address(peer: str) -> str:
    """'ipv4:1.2.3.4:5678' / 'ipv6:[::1]:5678' -> the address ('' for anything else)."""
    kind, _, rest = (peer or "").partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    return ""


def _network(address: str) -> str:
    """IPv6 clients are counted per /64 (one host usually holds a whole /64)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64] or "unknown"
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False).network_address)
    return str(ip)


def _usage(group: str, value: str, rate: str, *, increment: bool) -> dict | None:
    try:
        return get_usage(
            None, group=group, key=lambda _g, _r: value, rate=rate, increment=increment
        )
    except Exception:  # the cache is down: fail open, say so
        log.warning("throttle cache unavailable; %s not counted", group, exc_info=True)
        return None


def _blocked(group: str, value: str, rate: str) -> int:
    """Read-only: blocked once `limit` failures are counted in the window."""
    usage = _usage(group, value, rate, increment=False)
    if usage is None or usage.get("limit", 0) == 0 or usage["count"] < usage["limit"]:
        return 0
    return max(1, int(usage["time_left"]))


def _count(group: str, value: str, rate: str) -> int:
    usage = _usage(group, value, rate, increment=True)
    if usage is None or not usage["should_limit"] or usage.get("limit", 0) == 0:
        return 0
    return max(1, int(usage["time_left"]))


def _account(username: str) -> str:
    return (username or "").strip().lower()[:150]


def login_blocked(username: str, address: str) -> int:
    """Seconds until a sign-in for `username` from `address` is allowed again (0: now)."""
    return max(
        _blocked(LOGIN_ACCOUNT, _account(username), settings.THROTTLE_LOGIN_FAILURES_PER_ACCOUNT),
        _blocked(LOGIN_ADDRESS, _network(address), settings.THROTTLE_LOGIN_FAILURES_PER_ADDRESS),
    )


def login_failed(username: str, address: str) -> None:
    _count(LOGIN_ACCOUNT, _account(username), settings.THROTTLE_LOGIN_FAILURES_PER_ACCOUNT)
    _count(LOGIN_ADDRESS, _network(address), settings.THROTTLE_LOGIN_FAILURES_PER_ADDRESS)


def bad_key(address: str) -> int:
    """Count an invalid API key from `address`; seconds the address stays throttled (0: not)."""
    return _count(BAD_KEY_ADDRESS, _network(address), settings.THROTTLE_BAD_KEYS_PER_ADDRESS)


def wait_text(seconds: int) -> str:
    minutes = (seconds + 59) // 60
    return f"{minutes} minute{'s' if minutes != 1 else ''}" if seconds > 90 else f"{seconds} s"
