"""The capture engine's tunables: typed views of `django.conf.settings` (defaults in settings.py).

Read at call time, so a changed setting (tests override them) takes effect at once.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.signals import setting_changed

from collectors_module.core import generations

# Settings are read once per process and kept here (the prediction reads a dozen of them);
# a setting changed at run time sends `setting_changed`, which empties it.
_values: dict[str, object] = {}


def _get(name: str):
    try:
        return _values[name]
    except KeyError:
        value = _values[name] = getattr(settings, name)
        return value


def _forget(**kwargs) -> None:
    _values.clear()


setting_changed.connect(_forget, dispatch_uid="capture.conf")

HANDOFF_SPOOL = "spool"
HANDOFF_INLINE = "inline"


# -- the serving process: admission and handoff -----------------------------------------------


def handoff() -> str:
    """ "spool": append admitted captures to this host's spool (the capture agent commits them);
    "inline": the request thread inserts the outbox rows itself."""
    value = str(_get("COLLECTORS_CAPTURE_HANDOFF")).strip().lower()
    return HANDOFF_INLINE if value == HANDOFF_INLINE else HANDOFF_SPOOL


def background_threads() -> bool:
    """Periodic chores (index checks, counter flushes, backlog counts) run in background threads
    (servers), or on the calling thread when due (the test process)."""
    return generations.threads_allowed()


def spool_dir() -> Path:
    return Path(_get("COLLECTORS_SPOOL_DIR"))


def spool_dir_setting():
    """The setting as given (str or Path): the hand-off compares it without building a Path."""
    return _get("COLLECTORS_SPOOL_DIR")


def spool_segment_bytes() -> int:
    """A writer starts a new segment file past this size."""
    return max(4096, int(_get("COLLECTORS_SPOOL_SEGMENT_BYTES")))


def spool_max_bytes() -> int:
    """Unconsumed spool one serving process may hold; beyond it captures drop `spool_full`."""
    return int(_get("COLLECTORS_SPOOL_MAX_BYTES"))


def agent_batch() -> int:
    """Spooled captures the agent commits per transaction (and publishes per message)."""
    return max(1, int(_get("COLLECTORS_AGENT_BATCH")))


def agent_poll_seconds() -> float:
    """How long the agent sleeps when no writer woke it (a missed wake costs at most this)."""
    return max(0.001, float(_get("COLLECTORS_AGENT_POLL_SECONDS")))


def agent_priority() -> str:
    """The agent's CPU priority: "normal", "low" (nice 19) or "idle" (SCHED_IDLE)."""
    return str(_get("COLLECTORS_AGENT_PRIORITY"))


def cache_check_seconds() -> float:
    return float(_get("CACHE_CHECK_SECONDS"))


def index_max_age_seconds() -> float:
    """Rebuild the matching index at least this often, changes or not."""
    return float(_get("COLLECTORS_INDEX_MAX_AGE_SECONDS"))


def grant_cache_seconds() -> float:
    return float(_get("COLLECTORS_GRANT_CACHE_SECONDS"))


def pending_cache_seconds() -> float:
    return float(_get("COLLECTORS_PENDING_CACHE_SECONDS"))


def max_pending_total() -> int:
    """Global cap on accepted-but-unfinished captures (all collectors); 0 = no cap."""
    return int(_get("COLLECTORS_MAX_PENDING_TOTAL"))


def max_payload_bytes() -> int:
    """Largest input (bytes) a capture keeps; bigger inputs are dropped `payload_too_large`."""
    return int(_get("COLLECTORS_MAX_PAYLOAD_BYTES"))


def limiter_redis_url() -> str:
    return str(_get("COLLECTORS_LIMITER_REDIS_URL") or _get("REDIS_URL"))


def limiter_timeout_seconds() -> float:
    """Socket (connect and read) timeout of the rate limiter's Redis calls."""
    return float(_get("COLLECTORS_LIMITER_TIMEOUT_SECONDS"))


def limiter_breaker_seconds() -> float:
    """After a Redis failure, skip Redis (drop `limiter_unavailable`) for this long."""
    return float(_get("COLLECTORS_LIMITER_BREAKER_SECONDS"))


def counter_flush_seconds() -> float:
    return float(_get("COLLECTORS_COUNTER_FLUSH_SECONDS"))


# -- the outbox insert (the agent, or the request thread when inline) -------------------------


def insert_statement_timeout_ms() -> int:
    return int(_get("COLLECTORS_CAPTURE_STATEMENT_TIMEOUT_MS"))


def insert_lock_timeout_ms() -> int:
    return int(_get("COLLECTORS_CAPTURE_LOCK_TIMEOUT_MS"))


def capture_async_commit() -> bool:
    """Commit capture rows without waiting for the WAL flush (PostgreSQL `synchronous_commit=off`
    for that transaction only): the last few hundred ms of accepted captures can be lost if the
    database server itself crashes. Off by default (accepted = durably committed)."""
    return bool(_get("COLLECTORS_CAPTURE_ASYNC_COMMIT"))


# -- the relay (worker side hand-backs) -------------------------------------------------------


def relay_queue_size() -> int:
    return int(_get("COLLECTORS_RELAY_QUEUE_SIZE"))


def relay_linger_seconds() -> float:
    return int(_get("COLLECTORS_RELAY_LINGER_MS")) / 1000


# -- the worker -------------------------------------------------------------------------------


def lease_seconds() -> float:
    """How long a claim is valid; must exceed the task's hard time limit (see checks.py)."""
    return float(_get("COLLECTORS_LEASE_SECONDS"))


def max_attempts() -> int:
    return int(_get("COLLECTORS_MAX_ATTEMPTS"))


def max_age_seconds() -> float:
    """A capture older than this when claimed ends `expired` instead of being ingested late."""
    return float(_get("COLLECTORS_CAPTURE_MAX_AGE_SECONDS"))


def retry_base_seconds() -> float:
    return float(_get("COLLECTORS_RETRY_BASE_SECONDS"))


def retry_max_seconds() -> float:
    return float(_get("COLLECTORS_RETRY_MAX_SECONDS"))


def batch_size() -> int:
    """Captures one task claims and ingests in one transaction."""
    return max(1, int(_get("COLLECTORS_BATCH_SIZE")))


def batch_time_budget() -> float:
    """Seconds of enrichment one task may spend before handing the rest of its batch back."""
    return float(_get("COLLECTORS_BATCH_TIME_BUDGET_SECONDS"))


# -- the sweeper ------------------------------------------------------------------------------


def sweep_min_age_seconds() -> float:
    return float(_get("COLLECTORS_SWEEP_MIN_AGE_SECONDS"))


def sweep_accepted_age_seconds() -> float:
    return float(_get("COLLECTORS_SWEEP_ACCEPTED_AGE_SECONDS"))


def sweep_limit() -> int:
    return int(_get("COLLECTORS_SWEEP_LIMIT"))


def preview_max_inputs() -> int:
    """Most recent captures a collector preview evaluates (and the cap of its max_inputs)."""
    return int(_get("COLLECTORS_PREVIEW_MAX_INPUTS"))


def preview_time_budget_seconds() -> float:
    """Work time of one preview; what is left is reported as truncated."""
    return float(_get("COLLECTORS_PREVIEW_TIME_BUDGET_SECONDS"))
