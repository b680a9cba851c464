"""Per-collector counters: counted in process memory, flushed to `CollectorCounter` rows.

`count()` is a dict update under a lock (safe on the prediction path). A daemon thread upserts
the totals per (collector, metric, minute) every `COLLECTORS_COUNTER_FLUSH_SECONDS`, and once more
at process exit; `flush()` does it now (tests call it). Counts of collectors deleted meanwhile are
discarded.
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import os
import threading
import time
from collections import defaultdict

from django.db import IntegrityError, close_old_connections, connection, transaction

from . import conf

log = logging.getLogger("collectors.counters")

_lock = threading.Lock()
_flush_lock = threading.Lock()
_pending: defaultdict[tuple[int, str, int], int] = defaultdict(int)
_thread: threading.Thread | None = None
_thread_pid: int | None = None


def count(collector_id: int, metric: str, n: int = 1) -> None:
    """Add `n` to `metric` of a collector for the current minute. Never raises."""
    if n <= 0:
        return
    try:
        minute = int(time.time() // 60)
        with _lock:
            _pending[(int(collector_id), str(metric)[:48], minute)] += int(n)
        if _thread_pid != os.getpid():
            _ensure_thread()
    except Exception:
        log.exception("counting failed")


def pending() -> dict[tuple[int, str], int]:
    """Counts not flushed yet, summed over minutes (for tests and diagnostics)."""
    out: dict[tuple[int, str], int] = defaultdict(int)
    with _lock:
        for (cid, metric, _), n in _pending.items():
            out[(cid, metric)] += n
    return dict(out)


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
    from .models import CollectorCounter

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
                from .models import Collector

                live = set(
                    Collector.objects.filter(pk__in={k[0] for k in rows}).values_list(
                        "pk", flat=True
                    )
                )
                rows = {k: n for k, n in rows.items() if k[0] in live}
                if rows:
                    _upsert(rows)
            return len(rows)
        except Exception:
            log.exception("flushing collector counters failed; will retry")
            _give_back(rows)
            return 0


def _run() -> None:
    while True:
        time.sleep(max(0.1, conf.counter_flush_seconds()))
        try:
            close_old_connections()
            flush()
        except Exception:  # pragma: no cover - keep the thread alive
            log.exception("counter flusher")


def _ensure_thread() -> None:
    global _thread, _thread_pid
    with _lock:
        if _thread_pid == os.getpid():
            return
        _thread_pid = os.getpid()
        if not conf.counter_thread_enabled():
            return
        _thread = threading.Thread(target=_run, name="collector-counters", daemon=True)
        _thread.start()


@atexit.register
def _flush_at_exit() -> None:  # pragma: no cover - process exit
    if _pending and conf.counter_thread_enabled():
        flush()
