"""Claiming captures: a compare-and-set to `processing` with a lease.

`attempts` is incremented at claim and is the fencing token: a worker whose lease was taken over
cannot record an outcome (see commit.py). Rows too old end `expired` and rows out of attempts end
`failed` here, before any work is done.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from collectors_module.core import metrics
from collectors_module.core.errors import SC

from .. import conf, counters
from ..models import Capture, CaptureState


@dataclass
class Claim:
    claimed: list[tuple[Any, int]]  # (capture id, attempts after this claim)
    ended: dict[Any, str]  # captures that ended at claim (expired, max_attempts)


def _claimable(now) -> Q:
    return (
        Q(state=CaptureState.ACCEPTED)
        | Q(state=CaptureState.RETRY, next_attempt_at__lte=now)
        | Q(state=CaptureState.PROCESSING, lease_until__lt=now)
    )


def _fast_claim(capture_ids: list, now) -> list[tuple[Any, int]]:
    """PostgreSQL: one autocommit `UPDATE ... RETURNING` claims the due, young, not-exhausted rows."""
    table = Capture._meta.db_table
    sql = (
        f"UPDATE {table} SET state = %s, attempts = attempts + 1, lease_until = %s, updated_at = %s "
        "WHERE id = ANY(%s::uuid[]) AND created_at >= %s AND attempts + 1 <= %s AND ("
        "state = %s OR (state = %s AND next_attempt_at <= %s) OR (state = %s AND lease_until < %s)"
        ") RETURNING id, attempts"
    )
    params = [
        CaptureState.PROCESSING.value,
        now + timedelta(seconds=conf.lease_seconds()),
        now,
        [str(i) for i in capture_ids],
        now - timedelta(seconds=conf.max_age_seconds()),
        conf.max_attempts(),
        CaptureState.ACCEPTED.value,
        CaptureState.RETRY.value,
        now,
        CaptureState.PROCESSING.value,
        now,
    ]
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return [(row[0], row[1]) for row in cur.fetchall()]


def claim(capture_ids: list) -> Claim:
    """Compare-and-set `processing` with a lease on the given rows that are due.

    PostgreSQL outside a transaction: one UPDATE ... RETURNING; the rows it did not take (too
    old, out of attempts, or simply not due) go through the general path below.
    """
    now = timezone.now()
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        taken = _fast_claim(capture_ids, now)
        if len(taken) == len(set(map(str, capture_ids))):
            return Claim(taken, {})
        got = {str(t[0]) for t in taken}
        rest = _claim_general([i for i in capture_ids if str(i) not in got])
        return Claim(taken + rest.claimed, rest.ended)
    return _claim_general(capture_ids)


def _claim_general(capture_ids: list) -> Claim:
    """Portable claim (one transaction, SKIP LOCKED); also ends too-old and exhausted rows."""
    now = timezone.now()
    ended: dict[Any, str] = {}
    with transaction.atomic():
        rows = list(
            Capture.objects.select_for_update(skip_locked=True)
            .filter(pk__in=capture_ids)
            .filter(_claimable(now))
            .values_list("pk", "attempts", "created_at", "collector_id", "reason", "status_code")
        )
        if not rows:
            return Claim([], {})
        too_old = now - timedelta(seconds=conf.max_age_seconds())
        limit = conf.max_attempts()
        expired = [r for r in rows if r[2] < too_old]
        poisoned = [r for r in rows if r[2] >= too_old and r[1] + 1 > limit]
        live = [r for r in rows if r[2] >= too_old and r[1] + 1 <= limit]
        done = {
            "finished_at": now,
            "updated_at": now,
            "lease_until": None,
            "payload": None,
        }
        if expired:
            Capture.objects.filter(pk__in=[r[0] for r in expired]).update(
                state=CaptureState.EXPIRED,
                reason=f"expired: older than {int(conf.max_age_seconds())} s when claimed",
                **done,
            )
            for r in expired:
                ended[r[0]] = CaptureState.EXPIRED
        for r in poisoned:
            last = f"; last error: {r[4]}" if r[4] else ""
            Capture.objects.filter(pk=r[0]).update(
                state=CaptureState.FAILED,
                attempts=F("attempts") + 1,
                reason=f"max_attempts: gave up after {limit} attempts{last}"[:512],
                status_code=r[5] or SC.COLLECTOR_POST_INPUT_FAILED,
                **done,
            )
            ended[r[0]] = CaptureState.FAILED
        if live:
            Capture.objects.filter(pk__in=[r[0] for r in live]).update(
                state=CaptureState.PROCESSING,
                attempts=F("attempts") + 1,
                lease_until=now + timedelta(seconds=conf.lease_seconds()),
                updated_at=now,
            )
    for r in expired:
        counters.count(r[3], "outcome:expired")
    for r in poisoned:
        counters.count(r[3], "outcome:failed")
        age = (now - r[2]).total_seconds()
        metrics.capture_finished(r[3], "failed", r[5] or SC.COLLECTOR_POST_INPUT_FAILED, age)
    return Claim([(r[0], r[1] + 1) for r in live], ended)


def claim_due(limit: int) -> list[str]:
    """Ids of captures that are due now (accepted, retry due, lease expired), oldest first."""
    now = timezone.now()
    return [
        str(pk)
        for pk in Capture.objects.filter(_claimable(now))
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    ]
