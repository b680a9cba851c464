"""Readiness checks: the database, the broker, Redis, the workers' heartbeats.

Every check is bounded by `HEALTH_CHECK_TIMEOUT_SECONDS` (the database by its connect timeout)
and says only which dependency failed and the exception's class, never a host name or a URL
with its password. `readiness()` caches its answer for `HEALTH_CACHE_SECONDS` so a balancer's
probes cannot load the database.
"""

from __future__ import annotations

import contextlib
import threading
import time

import redis
from django.conf import settings
from django.db import connection
from kombu import Connection

from . import heartbeat

_lock = threading.Lock()
_cached: tuple[float, dict] | None = None


def _timeout() -> float:
    return float(settings.HEALTH_CHECK_TIMEOUT_SECONDS)


def _failed(exc: BaseException) -> dict:
    return {"ok": False, "error": type(exc).__name__}


def check_database() -> dict:
    try:
        with connection.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()
        return {"ok": True}
    except Exception as exc:
        # A broken connection is dropped, so the next check (or request) opens a new one.
        with contextlib.suppress(Exception):
            connection.close()
        return _failed(exc)


def check_redis(url: str) -> dict:
    client = redis.Redis.from_url(url, socket_timeout=_timeout(), socket_connect_timeout=_timeout())
    try:
        client.ping()
        return {"ok": True}
    except Exception as exc:
        return _failed(exc)
    finally:
        client.close()


def check_broker() -> dict:
    url = settings.CELERY_BROKER_URL
    if url.startswith(("redis://", "rediss://")):
        return check_redis(url)
    if url.startswith("filesystem://"):
        return {"ok": True}  # folders on this disk
    try:
        with Connection(url, connect_timeout=_timeout()) as conn:
            conn.ensure_connection(max_retries=1, timeout=_timeout())
        return {"ok": True}
    except Exception as exc:
        return _failed(exc)


def check_workers() -> dict:
    """The fresh worker heartbeats (informational for the web; `healthcheck worker` needs one)."""
    try:
        beats = heartbeat.fresh_heartbeats()
    except Exception as exc:
        return _failed(exc)
    return {"ok": bool(beats), "fresh": len(beats)}  # no host names: /readyz is public


def readiness(*, use_cache: bool = True) -> dict:
    """{"ready": bool, "checks": {...}}: ready when the database, Redis and the broker answer."""
    global _cached
    now = time.monotonic()
    with _lock:
        if use_cache and _cached and now - _cached[0] < float(settings.HEALTH_CACHE_SECONDS):
            return _cached[1]
    checks = {"database": check_database(), "broker": check_broker()}
    if settings.REDIS_URL and settings.REDIS_URL != settings.CELERY_BROKER_URL:
        checks["redis"] = check_redis(settings.REDIS_URL)
    ready = all(c["ok"] for c in checks.values())
    checks["workers"] = check_workers()
    result = {"ready": ready, "checks": checks}
    with _lock:
        _cached = (time.monotonic(), result)
    return result
