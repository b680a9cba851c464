"""Retention: delete finished capture rows and old per-minute counters, in small batches.

A capture row is its own decision log (state, reason, status, attempts, times). Once it is
terminal (ingested, filtered, failed, expired, dropped) and finished more than
`CAPTURE_RETENTION_DAYS` ago, it goes; `CollectorCounter` rows whose minute is older than
`COUNTER_RETENTION_DAYS` go too. 0 keeps them forever.

How it stays out of the way:
- each batch is one short transaction of at most `RETENTION_BATCH_SIZE` rows, found through a
  partial index (`finished_at` of terminal rows; `bucket` of counters), taken with
  `FOR UPDATE SKIP LOCKED` so a row some transaction holds is left for the next run;
- a row in flight (accepted, processing, retry) never matches: the state is in the condition of
  the SELECT and again of the DELETE;
- a short pause between batches, and at most `RETENTION_MAX_SECONDS` per run (beat runs it every
  `RETENTION_INTERVAL_SECONDS`; the next run goes on where this one stopped);
- on PostgreSQL an advisory lock keeps two schedulers from purging at once.

The collectors' totals (Show All, GetCollector stats) stay whole: the deleted rows are counted
into the counters as `purged:<state>` before they go, and those counters follow the counters'
own retention.
"""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from collectors_module.core import metrics

from . import counters
from .models import TERMINAL_STATES, Capture, CollectorCounter
from .sweeper import try_xact_lock

log = logging.getLogger("collectors.retention")

ADVISORY_LOCK_KEY = 0x636F6C72  # "colr"


def _try_lock() -> bool:
    return try_xact_lock(ADVISORY_LOCK_KEY)


def _purge_capture_batch(cutoff, batch: int) -> int:
    with transaction.atomic():
        if not _try_lock():
            return -1
        rows = list(
            Capture.objects.select_for_update(skip_locked=True)
            .filter(state__in=TERMINAL_STATES, finished_at__lt=cutoff)
            .order_by()
            .values_list("pk", "collector_id", "state")[:batch]
        )
        if not rows:
            return 0
        deleted, _ = Capture.objects.filter(
            pk__in=[r[0] for r in rows], state__in=TERMINAL_STATES, finished_at__lt=cutoff
        ).delete()
        for (collector_id, state), n in Tally((r[1], r[2]) for r in rows).items():
            counters.count(collector_id, f"purged:{state}", n)
    counters.flush()
    return deleted


def _purge_counter_batch(cutoff, batch: int) -> int:
    with transaction.atomic():
        pks = list(
            CollectorCounter.objects.select_for_update(skip_locked=True)
            .filter(bucket__lt=cutoff)
            .order_by()
            .values_list("pk", flat=True)[:batch]
        )
        if not pks:
            return 0
        deleted, _ = CollectorCounter.objects.filter(pk__in=pks, bucket__lt=cutoff).delete()
    return deleted


def purge(
    *,
    now=None,
    capture_days: float | None = None,
    counter_days: float | None = None,
    batch: int | None = None,
    max_seconds: float | None = None,
    pause: float | None = None,
) -> dict:
    """Delete what is past its age; returns {"captures": n, "counters": n, "done": bool}."""
    now = now or timezone.now()
    capture_days = settings.CAPTURE_RETENTION_DAYS if capture_days is None else capture_days
    counter_days = settings.COUNTER_RETENTION_DAYS if counter_days is None else counter_days
    batch = max(1, int(settings.RETENTION_BATCH_SIZE if batch is None else batch))
    max_seconds = settings.RETENTION_MAX_SECONDS if max_seconds is None else max_seconds
    pause = settings.RETENTION_PAUSE_SECONDS if pause is None else pause
    deadline = time.monotonic() + max_seconds
    result = {"captures": 0, "counters": 0, "done": True}
    jobs = []
    if capture_days and capture_days > 0:
        jobs.append(("captures", _purge_capture_batch, now - timedelta(days=capture_days)))
    if counter_days and counter_days > 0:
        jobs.append(("counters", _purge_counter_batch, now - timedelta(days=counter_days)))
    for name, job, cutoff in jobs:
        while True:
            if time.monotonic() > deadline:
                result["done"] = False
                break
            n = job(cutoff, batch)
            if n < 0:  # another scheduler is purging
                result["done"] = False
                break
            result[name] += n
            metrics.RETENTION_DELETED.labels("capture" if name == "captures" else "counter").inc(n)
            if n < batch:
                break
            if pause > 0:
                time.sleep(pause)
    if result["captures"] or result["counters"]:
        log.info(
            "retention: deleted %s capture rows and %s counter rows",
            result["captures"],
            result["counters"],
        )
    return result
