"""Admission limits: per-collector rates (shared through Redis) and caps on unfinished captures.

Rates: fixed minute/hour/day windows counted in Redis with one Lua call (check every window, then
count in all of them), so the limit holds across web processes and machines. Redis calls use a
very short timeout; after a failure a circuit breaker skips Redis for a few seconds. A collector
with rate limits whose limiter is unavailable drops the capture (`limiter_unavailable`):
fail closed for the capture, never slow the prediction.

A window found full is remembered until it ends (or the collectors change), so a flood over the
limit costs no Redis call per prediction.

Backlog caps: accepted-but-unfinished captures per collector (`max_pending`) and in total
(`COLLECTORS_MAX_PENDING_TOTAL`), counted in the database at most once per second per process
(bounded: the count stops at the cap) by the background thread in servers, plus this process's
own admissions since then.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import redis
from django.db import connection, transaction
from redis.backoff import NoBackoff
from redis.retry import Retry

from collectors_module.collectors.models import Collector
from collectors_module.core import generations

from . import conf
from .models import PENDING_STATES, Capture

log = logging.getLogger("collectors.limits")

RATE_LIMITED = "rate_limited"
LIMITER_UNAVAILABLE = "limiter_unavailable"
BACKLOG_FULL = "backlog_full"

_LUA = """
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i - 1])
  local current = tonumber(redis.call('GET', key) or '0')
  if current >= limit then return i end
end
for i, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('EXPIRE', key, tonumber(ARGV[2 * i])) end
end
return 0
"""

_WINDOWS = (("m", 60, "max_per_minute"), ("h", 3600, "max_per_hour"), ("d", 86400, "max_per_day"))


def limiter_client(url: str) -> redis.Redis:
    """A client for the admission limiter's Redis (limits and class quotas): short timeouts and no
    retries, since a slow Redis must cost a prediction at most one timeout."""
    timeout = conf.limiter_timeout_seconds()
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        health_check_interval=0,
        max_connections=64,
    )


class RateLimiter:
    """Fixed-window counters in Redis behind a short timeout and a circuit breaker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._client = None
        self._script = None
        self._url = None
        self._open_until = 0.0
        self._full: dict[str, bool] = {}  # Redis keys of windows known to be full

    def forget_full_windows(self) -> None:
        """Limits may have changed: ask Redis again."""
        self._full = {}

    def _get_script(self):
        url = conf.limiter_redis_url()
        if self._script is None or url != self._url:
            self._client = limiter_client(url)
            self._script = self._client.register_script(_LUA)
            self._url = url
        return self._script

    def reset(self) -> None:
        """Forget the client and close the breaker (tests, settings changes)."""
        with self._lock:
            if self._client is not None:
                with contextlib.suppress(Exception):
                    self._client.close()
            self._client = self._script = self._url = None
            self._open_until = 0.0
            self._full = {}

    def check(self, entry) -> str | None:
        """None when the capture may go on (and is counted), else the drop reason."""
        windows = [(name, seconds, getattr(entry, attr)) for name, seconds, attr in _WINDOWS]
        windows = [w for w in windows if w[2] > 0]
        if not windows:
            return None
        now = time.time()
        if time.monotonic() < self._open_until:
            return LIMITER_UNAVAILABLE
        keys, args = [], []
        for name, seconds, limit in windows:
            bucket = int(now // seconds)
            keys.append(f"collectors:rl:{entry.pk}:{name}:{bucket}")
            args.extend([limit, seconds + 5])
        full = self._full
        if any(k in full for k in keys):
            return RATE_LIMITED
        try:
            with self._lock:
                script = self._get_script()
            verdict = script(keys=keys, args=args)
        except Exception as exc:  # RedisError, OSError, timeouts: fail closed for the capture
            self._open_until = time.monotonic() + conf.limiter_breaker_seconds()
            log.warning(
                "rate limiter unavailable (%s); dropping limited captures for %.0f s",
                type(exc).__name__,
                conf.limiter_breaker_seconds(),
            )
            self.reset_client_only()
            return LIMITER_UNAVAILABLE
        verdict = int(verdict)
        if verdict == 0:
            return None
        if len(full) > 10_000:
            full.clear()
        full[keys[verdict - 1]] = True  # later windows have other keys: this one ends by itself
        return RATE_LIMITED

    def reset_client_only(self) -> None:
        with self._lock:
            client, self._client, self._script, self._url = self._client, None, None, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()


class BacklogCaps:
    """Caps on accepted-but-unfinished captures, from counts cached for ~1 s."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total: tuple[int, float] | None = None
        self._per: dict[int, tuple[int, float]] = {}
        self._wanted: dict[int | None, int] = {}

    def reset(self) -> None:
        with self._lock:
            self._total = None
            self._per.clear()

    def _count(self, collector_pk: int | None, cap: int) -> int:
        table = connection.ops.quote_name(Capture._meta.db_table)
        placeholders = ", ".join(["%s"] * len(PENDING_STATES))
        where = f"state IN ({placeholders})"
        params: list = [str(s) for s in PENDING_STATES]
        if collector_pk is not None:
            where += " AND collector_id = %s"
            params.append(collector_pk)
        params.append(cap + 1)
        sql = f"SELECT COUNT(*) FROM (SELECT 1 FROM {table} WHERE {where} LIMIT %s) AS pending"
        guard = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
        with guard, connection.cursor() as cursor:  # a savepoint inside a caller's transaction
            cursor.execute(sql, params)
            return int(cursor.fetchone()[0])

    def _store(self, collector_pk: int | None, n: int) -> None:
        now = time.monotonic()
        with self._lock:
            if collector_pk is None:
                self._total = (n, now)
            else:
                if len(self._per) > 10_000:
                    self._per.clear()
                self._per[collector_pk] = (n, now)

    def _cached(self, collector_pk: int | None, cap: int) -> int:
        now = time.monotonic()
        hit = self._total if collector_pk is None else self._per.get(collector_pk)
        if hit is not None and now - hit[1] < conf.pending_cache_seconds():
            return hit[0]
        if conf.background_threads():
            # Servers: counting (up to `cap` rows) is the background thread's job, never the
            # prediction's; until its first count the cap cannot be judged, so admit.
            with self._lock:
                self._wanted[collector_pk] = cap
            generations.ensure_fresh()
            return hit[0] if hit is not None else 0
        n = self._count(collector_pk, cap)
        self._store(collector_pk, n)
        return n

    def refresh(self) -> None:
        """Count the caps asked for (the background thread's chore, every ~second)."""
        with self._lock:
            wanted = dict(self._wanted)
        now = time.monotonic()
        for collector_pk, cap in wanted.items():
            hit = self._total if collector_pk is None else self._per.get(collector_pk)
            if hit is not None and now - hit[1] < conf.pending_cache_seconds() / 2:
                continue
            try:
                self._store(collector_pk, self._count(collector_pk, cap))
            except Exception:
                log.warning("backlog count failed for %s", collector_pk or "all collectors")

    def check(self, entry) -> str | None:
        total_cap = conf.max_pending_total()
        if total_cap and self._cached(None, total_cap) >= total_cap:
            return BACKLOG_FULL
        if entry.max_pending and self._cached(entry.pk, entry.max_pending) >= entry.max_pending:
            return BACKLOG_FULL
        return None

    def note_accepted(self, collector_pk: int, n: int = 1) -> None:
        """Count this process's own admissions until the next database count."""
        with self._lock:
            if self._total is not None:
                self._total = (self._total[0] + n, self._total[1])
            hit = self._per.get(collector_pk)
            if hit is not None:
                self._per[collector_pk] = (hit[0] + n, hit[1])


rate_limiter = RateLimiter()
backlog = BacklogCaps()


def install() -> None:
    """Background chores and cache subscriptions (CaptureConfig.ready)."""
    generations.add_chore(backlog.refresh)
    generations.on_change(generations.tables_of(Collector), rate_limiter.forget_full_windows)
