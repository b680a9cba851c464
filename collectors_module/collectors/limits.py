"""Admission limits: per-collector rates (shared through Redis) and caps on unfinished captures.

Rates: fixed minute/hour/day windows counted in Redis with one Lua call (check every window, then
count in all of them), so the limit holds across web processes and machines. Redis calls use a
very short timeout; after a failure a circuit breaker skips Redis for a few seconds. A collector
with rate limits whose limiter is unavailable drops the capture (`limiter_unavailable`):
fail closed for the capture, never slow the prediction.

Backlog caps: accepted-but-unfinished captures per collector (`max_pending`) and in total
(`COLLECTORS_MAX_PENDING_TOTAL`), counted in the database at most once per second per process
(bounded: the count stops at the cap), plus this process's own acceptances since then.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time

from django.db import connection

from . import conf

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


class RateLimiter:
    """Fixed-window counters in Redis behind a short timeout and a circuit breaker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._client = None
        self._script = None
        self._url = None
        self._open_until = 0.0

    def _get_script(self):
        url = conf.limiter_redis_url()
        if self._script is None or url != self._url:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            timeout = conf.limiter_timeout_seconds()
            self._client = redis.Redis.from_url(
                url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0),
                retry_on_timeout=False,
                health_check_interval=0,
                max_connections=64,
            )
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
        return None if int(verdict) == 0 else RATE_LIMITED

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
        self._thread: threading.Thread | None = None
        self._thread_pid: int | None = None

    def reset(self) -> None:
        with self._lock:
            self._total = None
            self._per.clear()

    def _count(self, collector_pk: int | None, cap: int) -> int:
        from .models import Capture
        from .selectors import PENDING_STATES

        table = connection.ops.quote_name(Capture._meta.db_table)
        placeholders = ", ".join(["%s"] * len(PENDING_STATES))
        where = f"state IN ({placeholders})"
        params: list = [str(s) for s in PENDING_STATES]
        if collector_pk is not None:
            where += " AND collector_id = %s"
            params.append(collector_pk)
        params.append(cap + 1)
        sql = f"SELECT COUNT(*) FROM (SELECT 1 FROM {table} WHERE {where} LIMIT %s) AS pending"
        from .matching import _guard  # a savepoint when the caller is inside a transaction

        with _guard(), connection.cursor() as cursor:
            cursor.execute(sql, params)
            return int(cursor.fetchone()[0])

    def _cached(self, collector_pk: int | None, cap: int) -> int:
        now = time.monotonic()
        hit = self._total if collector_pk is None else self._per.get(collector_pk)
        if hit is not None and now - hit[1] < conf.pending_cache_seconds():
            return hit[0]
        if conf.index_thread_enabled():
            # Servers: counting (up to `cap` rows) is the refresher thread's job, never the
            # prediction's; until its first count the cap cannot be judged, so admit.
            self._want(collector_pk, cap)
            return hit[0] if hit is not None else 0
        n = self._count(collector_pk, cap)
        with self._lock:
            if collector_pk is None:
                self._total = (n, now)
            else:
                if len(self._per) > 10_000:
                    self._per.clear()
                self._per[collector_pk] = (n, now)
        return n

    def _want(self, collector_pk: int | None, cap: int) -> None:
        with self._lock:
            self._wanted[collector_pk] = cap
            start = (
                self._thread is None
                or self._thread_pid != os.getpid()
                or not self._thread.is_alive()
            )
            if start:
                self._thread_pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._refresh_loop, name="collectors-backlog", daemon=True
                )
                self._thread.start()

    def _refresh_loop(self) -> None:
        from django.db import close_old_connections

        while conf.index_thread_enabled():
            with self._lock:
                wanted = dict(self._wanted)
            for collector_pk, cap in wanted.items():
                try:
                    n = self._count(collector_pk, cap)
                except Exception:
                    log.warning("backlog count failed for %s", collector_pk or "all collectors")
                    continue
                with self._lock:
                    if collector_pk is None:
                        self._total = (n, time.monotonic())
                    else:
                        self._per[collector_pk] = (n, time.monotonic())
            close_old_connections()
            time.sleep(max(0.2, conf.pending_cache_seconds() / 2))
        with self._lock:
            self._thread = None
        from django.db import connection as thread_connection

        thread_connection.close()

    def check(self, entry) -> str | None:
        total_cap = conf.max_pending_total()
        if total_cap and self._cached(None, total_cap) >= total_cap:
            return BACKLOG_FULL
        if entry.max_pending and self._cached(entry.pk, entry.max_pending) >= entry.max_pending:
            return BACKLOG_FULL
        return None

    def note_accepted(self, collector_pk: int, n: int = 1) -> None:
        """Count this process's own acceptances until the next database count."""
        with self._lock:
            if self._total is not None:
                self._total = (self._total[0] + n, self._total[1])
            hit = self._per.get(collector_pk)
            if hit is not None:
                self._per[collector_pk] = (hit[0] + n, hit[1])


rate_limiter = RateLimiter()
backlog = BacklogCaps()
