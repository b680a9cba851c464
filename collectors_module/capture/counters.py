"""Per-collector counters: counted in process memory, flushed to `CollectorCounter` rows.

`count()` is a dict update under a lock (safe on the prediction path). The process's background
thread upserts the totals per (collector, metric, minute) every `COLLECTORS_COUNTER_FLUSH_SECONDS`,
and once more at process exit; `flush()` does it now (tests call it). Counts of collectors deleted
meanwhile are discarded.
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import os
import threading
import time
from collections import defaultdict

from django.db import IntegrityError, connection, transaction

from collectors_module.collectors.models import Collector
from collectors_module.core import generations, metrics

from . import conf
from .models import CollectorCounter

log = logging.getLogger("collectors.counters")

_lock = threading.Lock()
_flush_lock = threading.Lock()
_pending: defaultdict[tuple[int, str, int], int] = defaultdict(int)
_flushed_at = 0.0
_flusher_pid: int | None = None


def _start_flusher() -> None:
    """Make sure this process's background thread runs (it flushes the counts)."""
    global _flusher_pid
    _flusher_pid = os.getpid()
    if conf.background_threads():
        generations.start_thread()


def count(collector_id: int, metric: str, n: int = 1) -> None:
    """Add `n` to `metric` of a collector for the current minute. Never raises."""
    if n <= 0:
        return
    try:
        minute = int(time.time() // 60)
        with _lock:
            _pending[(int(collector_id), str(metric)[:48], minute)] += int(n)
        if _flusher_pid != os.getpid():
            _start_flusher()
    except Exception:
        log.exception("counting failed")


def pending() -> dict[tuple[int, str], int]:
    """Counts not flushed yet, summed over minutes (for tests and diagnostics)."""
    out: dict[tuple[int, str], int] = defaultdict(int)
    with _lock:
        for (cid, metric, _), n in _pending.items():
            out[(cid, metric)] += n
    return dict(out)


def discard() -> None:
    """Forget the counts not flushed yet (tests start from zero)."""
    _take()


def _take() -> dict:
    global _pending
    with _lock:
        taken, _pending = _pending, defaultdict(int)
    return taken


def _give_back(rows: dict) -> None:
    with _lock:
        for k, n in rows.items():
            _pending[k] += n


def _upsert(rows: dict) -> None:
    table = connection.ops.quote_name(CollectorCounter._meta.db_table)
    sql = (
        f"INSERT INTO {table} (collector_id, metric, bucket, count) VALUES (%s, %s, %s, %s) "
        f"ON CONFLICT (collector_id, metric, bucket) DO UPDATE SET count = {table}.count + excluded.count"
    )
    params = [
        (cid, metric, dt.datetime.fromtimestamp(minute * 60, tz=dt.UTC), n)
        for (cid, metric, minute), n in sorted(rows.items())
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, params)


def flush() -> int:
    """Write every pending count now; returns the number of rows upserted. Never raises."""
    with _flush_lock:
        rows = _take()
        if not rows:
            return 0
        try:
            try:
                _upsert(rows)
            except IntegrityError:
                # A collector was deleted since it was counted: keep the rows of live ones.
                live = set(
                    Collector.objects.filter(pk__in={k[0] for k in rows}).values_list(
                        "pk", flat=True
                    )
                )
                rows = {k: n for k, n in rows.items() if k[0] in live}
                if rows:
                    _upsert(rows)
            metrics.add_capture_counts(rows)  # what the table got, so both agree
            return len(rows)
        except Exception:
            log.exception("flushing collector counters failed; will retry")
            _give_back(rows)
            return 0


def flush_if_due() -> None:
    """Flush when COLLECTORS_COUNTER_FLUSH_SECONDS have passed (the background thread's chore)."""
    global _flushed_at
    now = time.monotonic()
    if now - _flushed_at >= conf.counter_flush_seconds():
        _flushed_at = now
        flush()


def install() -> None:
    generations.add_chore(flush_if_due)


@atexit.register
def _flush_at_exit() -> None:  # pragma: no cover - process exit
    if _pending and conf.background_threads():
        flush()
