"""Tunables of the capture path (settings override the defaults; env overrides both)."""

from __future__ import annotations

import os
import sys

from django.conf import settings


def _get(name: str, default, cast=None):
    raw = os.environ.get(name)
    if raw is not None and raw != "":
        return (cast or type(default))(raw)
    return getattr(settings, name, default)


def _bool(raw) -> bool:
    return str(raw).strip().lower() in {"1", "true", "yes", "on"}


def index_check_seconds() -> float:
    """How often (at most) a process checks whether collectors changed elsewhere."""
    return _get("COLLECTORS_INDEX_CHECK_SECONDS", 1.0, float)


def index_max_age_seconds() -> float:
    """Rebuild the matching index at least this often (workflow edits, ownership)."""
    return _get("COLLECTORS_INDEX_MAX_AGE_SECONDS", 30.0, float)


def index_thread_enabled() -> bool:
    """Check for collector changes in a background thread (off the prediction path); off under
    pytest, where test data lives in the test's own transaction (the request thread checks)."""
    raw = os.environ.get("COLLECTORS_INDEX_THREAD")
    if raw is not None and raw != "":
        return _bool(raw)
    return bool(getattr(settings, "COLLECTORS_INDEX_THREAD", "pytest" not in sys.modules))


def grant_cache_seconds() -> float:
    return _get("COLLECTORS_GRANT_CACHE_SECONDS", 1.0, float)


def pending_cache_seconds() -> float:
    return _get("COLLECTORS_PENDING_CACHE_SECONDS", 1.0, float)


def max_pending_total() -> int:
    """Global cap on accepted-but-unfinished captures (all collectors); 0 = no cap."""
    return _get("COLLECTORS_MAX_PENDING_TOTAL", 100_000, int)


def max_payload_bytes() -> int:
    """Largest input (bytes) a capture keeps; bigger inputs are dropped `payload_too_large`."""
    return _get("COLLECTORS_MAX_PAYLOAD_BYTES", 8 * 2**20, int)


def insert_statement_timeout_ms() -> int:
    return _get("COLLECTORS_CAPTURE_STATEMENT_TIMEOUT_MS", 100, int)


def insert_lock_timeout_ms() -> int:
    return _get("COLLECTORS_CAPTURE_LOCK_TIMEOUT_MS", 50, int)


def capture_async_commit() -> bool:
    """Commit capture rows without waiting for the WAL flush (PostgreSQL `synchronous_commit=off`
    for that transaction only): the prediction no longer waits for an fsync, at the price of
    losing the last few hundred ms of accepted captures if the database server itself crashes.
    Off by default (accepted = durably committed)."""
    raw = os.environ.get("COLLECTORS_CAPTURE_ASYNC_COMMIT")
    if raw is not None and raw != "":
        return _bool(raw)
    return bool(getattr(settings, "COLLECTORS_CAPTURE_ASYNC_COMMIT", False))


def capture_own_connection() -> bool:
    """Write captures over a dedicated autocommit PostgreSQL connection (one round trip per
    prediction, timeouts set once at connect) when the prediction is not inside a transaction.
    Off under pytest unless asked for (an extra open connection would keep the test database
    from being dropped); tests of this path turn it on and close it."""
    raw = os.environ.get("COLLECTORS_CAPTURE_OWN_CONNECTION")
    if raw is not None and raw != "":
        return _bool(raw)
    return bool(getattr(settings, "COLLECTORS_CAPTURE_OWN_CONNECTION", "pytest" not in sys.modules))


def limiter_redis_url() -> str:
    return _get("COLLECTORS_LIMITER_REDIS_URL", "", str) or os.environ.get(
        "REDIS_URL", getattr(settings, "REDIS_URL", "redis://127.0.0.1:6379/0")
    )


def limiter_timeout_seconds() -> float:
    """Socket (connect and read) timeout of the rate limiter's Redis calls."""
    return _get("COLLECTORS_LIMITER_TIMEOUT_SECONDS", 0.05, float)


def limiter_breaker_seconds() -> float:
    """After a Redis failure, skip Redis (drop `limiter_unavailable`) for this long."""
    return _get("COLLECTORS_LIMITER_BREAKER_SECONDS", 5.0, float)


def counter_flush_seconds() -> float:
    return _get("COLLECTORS_COUNTER_FLUSH_SECONDS", 2.0, float)


def counter_thread_enabled() -> bool:
    """The background flusher; off under pytest (tests call counters.flush() themselves)."""
    raw = os.environ.get("COLLECTORS_COUNTER_THREAD")
    if raw is not None and raw != "":
        return _bool(raw)
    return getattr(settings, "COLLECTORS_COUNTER_THREAD", "pytest" not in sys.modules)


def capture_writer_thread() -> bool:
    """Write accepted captures from a per-process writer thread (batched, off the request), or
    inline on the request thread. Off under pytest, where tests read rows right after predicting."""
    raw = os.environ.get("COLLECTORS_CAPTURE_WRITER")
    if raw is not None and raw != "":
        return raw.strip().lower() == "thread"
    return (
        str(
            getattr(
                settings,
                "COLLECTORS_CAPTURE_WRITER",
                "inline" if "pytest" in sys.modules else "thread",
            )
        )
        == "thread"
    )


def capture_queue_size() -> int:
    """Accepted captures waiting for the writer thread, per process; beyond it they are dropped."""
    return _get("COLLECTORS_CAPTURE_QUEUE_SIZE", 5000, int)


def capture_write_batch() -> int:
    """At most this many captures per INSERT by the writer thread."""
    return _get("COLLECTORS_CAPTURE_WRITE_BATCH", 200, int)
