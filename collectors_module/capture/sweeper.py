"""The sweeper: publishes again what the broker lost or never got, reclaims expired leases,
expires captures that waited too long. Beat runs it every COLLECTORS_SWEEP_SECONDS (15 s).

Safe when two schedulers run it: on PostgreSQL it works under a transaction-level advisory lock
(the second one skips); rows are taken with `FOR UPDATE SKIP LOCKED` in bounded batches, so rows a
worker is ingesting right now are left alone.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from collectors_module.core import metrics

from . import conf, counters
from .models import Capture, CaptureState
from .relay import publish_ids

log = logging.getLogger("collectors.sweeper")

ADVISORY_LOCK_KEY = 0x636F6C6C  # "coll"


def try_xact_lock(key: int) -> bool:
    """PostgreSQL's transaction-scoped advisory lock on `key`, without waiting (one sweeper or
    retention run at a time across hosts); always granted on SQLite, whose writers are serial."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_xact_lock(%s)", [key])
        return bool(cur.fetchone()[0])


def _try_lock() -> bool:
    return try_xact_lock(ADVISORY_LOCK_KEY)


def sweep(
    *,
    min_age: float | None = None,
    accepted_age: float | None = None,
    limit: int | None = None,
    publish: bool = True,
) -> dict:
    """Republish due captures and expired leases, expire the too-old ones. Returns counts.

    A row is republished when it was untouched for `min_age` s (retry due, lease expired) or,
    for `accepted` rows the relay normally published within milliseconds, `accepted_age` s
    (default 30 s: rows merely waiting in a long broker queue are not published again and
    again). A republished row is touched, so it is not republished before that age again.
    Publishes after the transaction commits."""
    if accepted_age is None:
        accepted_age = conf.sweep_accepted_age_seconds() if min_age is None else min_age
    min_age = conf.sweep_min_age_seconds() if min_age is None else min_age
    limit = conf.sweep_limit() if limit is None else limit
    now = timezone.now()
    quiet_since = now - timedelta(seconds=min_age)
    accepted_quiet_since = now - timedelta(seconds=accepted_age)
    too_old = now - timedelta(seconds=conf.max_age_seconds())
    result = {"locked": False, "expired": 0, "republished": 0, "reclaimed": 0}
    with transaction.atomic():
        if not _try_lock():
            return result
        result["locked"] = True
        # Waiting too long: end them now rather than ingesting stale data (claim checks this too).
        stale = list(
            Capture.objects.select_for_update(skip_locked=True)
            .filter(
                Q(state__in=[CaptureState.ACCEPTED, CaptureState.RETRY])
                | Q(state=CaptureState.PROCESSING, lease_until__lt=now),
                created_at__lt=too_old,
            )
            .values_list("pk", "collector_id")[:limit]
        )
        if stale:
            Capture.objects.filter(pk__in=[s[0] for s in stale]).update(
                state=CaptureState.EXPIRED,
                reason=f"expired: older than {int(conf.max_age_seconds())} s",
                payload=None,
                lease_until=None,
                finished_at=now,
                updated_at=now,
            )
        result["expired"] = len(stale)
        due = list(
            Capture.objects.select_for_update(skip_locked=True)
            .filter(
                Q(state=CaptureState.ACCEPTED, updated_at__lte=accepted_quiet_since)
                | Q(state=CaptureState.RETRY, next_attempt_at__lte=now, updated_at__lte=quiet_since)
                | Q(state=CaptureState.PROCESSING, lease_until__lt=now, updated_at__lte=quiet_since)
            )
            .order_by("created_at")
            .values_list("pk", "state")[:limit]
        )
        if due:
            # Touch them so the next sweep leaves them alone for `min_age` while they are queued.
            Capture.objects.filter(pk__in=[d[0] for d in due]).update(updated_at=now)
        result["reclaimed"] = sum(1 for d in due if d[1] == CaptureState.PROCESSING)
    ids = [str(d[0]) for d in due]
    if ids and publish:
        result["republished"] = publish_ids(ids)
    elif ids:
        result["due_ids"] = ids
    for _pk, collector_id in stale:
        counters.count(collector_id, "outcome:expired")
    metrics.SWEEPER_REPUBLISHED.inc(result["republished"])
    metrics.SWEEPER_RECLAIMED.inc(result["reclaimed"])
    metrics.SWEEPER_EXPIRED.inc(result["expired"])
    if result["republished"] or result["expired"]:
        log.info("sweep: %s", result)
    return result
