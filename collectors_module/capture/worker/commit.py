"""Recording outcomes: the destination inputs and every capture's end state, in ONE transaction.

The destination input id derives from the capture id, and the input insert and the `ingested`
mark commit together, so a retry finds the input (INPUT_DUPLICATE) and never creates a second
one. Outcome UPDATEs are fenced by (state = processing, attempts = ours): a worker whose lease
was taken over records nothing.

Near duplicates across workers: the captures to ingest whose collector suppresses near duplicates
are looked up once more inside the transaction, after taking a transaction-level advisory lock
per destination app (PostgreSQL), so two workers ingesting the same picture at the same moment
commit one after the other and the second finds the first's input.
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from typing import Any

from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F, TextField, Value
from django.db.models.functions import Cast, Concat, Replace
from django.utils import timezone

from collectors_module.collectors.services import collector_flag
from collectors_module.core.errors import SC, ApiError, code_name
from collectors_module.core.faults import fault_point
from collectors_module.datasets.services import add_ingested_inputs
from collectors_module.inputs.services import NewInput, find_duplicate, inputs_create_bulk

from .. import conf, near_duplicates, relay
from ..models import Capture, CaptureState
from .decide import INGEST, TRANSIENT_CODES, Decision

log = logging.getLogger("collectors.pipeline")

DUPLICATE_REASON = "input_duplicate: ingested by an earlier attempt"
NEAR_DUPLICATE_LOCK = 7_201_318  # advisory lock namespace: (this, destination app pk)


def _recheck_near_duplicates(ds: list[Decision]) -> None:
    """Inside the commit transaction: filter the captures to ingest that duplicate an input
    committed since they were decided (by another worker). Locks each app concerned, in order."""
    checked = [d for d in ds if d.state == INGEST and d.fingerprint is not None]
    if not checked:
        return
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for app_pk in sorted({d.app.pk for d in checked}):
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(%s, %s)", [NEAR_DUPLICATE_LOCK, app_pk]
                )
    for d in checked:
        match = find_duplicate(d.app, d.fingerprint, max_distance=d.near_duplicate_distance)
        if match is not None:
            d.state, d.filtered_by = CaptureState.FILTERED, near_duplicates.REASON
            d.reason = near_duplicates.reason(match)


def backoff(attempts: int) -> float:
    """Exponential backoff with +-20% jitter, capped."""
    delay = min(conf.retry_max_seconds(), conf.retry_base_seconds() * (2 ** max(0, attempts - 1)))
    return delay * random.uniform(0.8, 1.2)


def _refused(d: Decision, exc: ApiError) -> None:
    if exc.code in TRANSIENT_CODES:
        d.state, d.reason, d.status_code = "retry", f"destination: {exc.details}"[:500], exc.code
    elif exc.code == SC.INPUT_DUPLICATE:
        # An earlier attempt committed the input (crash before the ack): already ingested.
        d.state, d.reason = CaptureState.INGESTED, DUPLICATE_REASON
    else:
        d.state = CaptureState.FAILED
        d.status_code = SC.COLLECTOR_POST_INPUT_FAILED
        d.reason = f"destination refused the input: {code_name(exc.code)} {exc.details}"[:500]


def ingest(ds: list[Decision], *, careful: bool) -> None:
    """Insert the destination inputs through the inputs app's bulk service (one INSERT per app).

    `careful`: a concurrent insert of one of the ids is resolved one input at a time; otherwise
    the IntegrityError propagates (the fast path rolls back and takes the careful path)."""
    by_app: dict[int, list[Decision]] = {}
    for d in ds:
        by_app.setdefault(d.app.pk, []).append(d)
    for group in by_app.values():
        items = [
            NewInput(
                input_pb=d.input_pb,
                image_bytes=d.image_bytes,
                annotations=d.annotations,
                extra_metadata=d.metadata,
            )
            for d in group
        ]
        try:
            results = inputs_create_bulk(
                app=group[0].app, items=items, one_by_one_on_conflict=careful
            )
        except DatabaseError as exc:
            if not careful or isinstance(exc, IntegrityError):
                raise
            for d in group:
                d.state, d.reason = "retry", f"destination: {type(exc).__name__}: {exc}"[:500]
            continue
        for d, result in zip(group, results, strict=True):
            if isinstance(result, ApiError):
                _refused(d, result)
            else:
                d.state, d.reason = CaptureState.INGESTED, ""
        # The collector's destination dataset, in this same transaction (datasets.md).
        add_ingested_inputs(
            [
                (d.collector_id, result.pk)
                for d, result in zip(group, results, strict=True)
                if not isinstance(result, ApiError)
            ]
        )
        fault_point("in_ingest_transaction")


def _updates_for(d: Decision, now) -> dict:
    if d.state == "retry":
        return {
            "state": CaptureState.RETRY,
            "reason": d.reason[:512],
            "status_code": d.status_code,
            "lease_until": None,
            "next_attempt_at": now + timedelta(seconds=backoff(d.attempts)),
            "updated_at": now,
        }
    out = {
        "state": d.state,
        "reason": d.reason[:512],
        "status_code": 0 if d.state == CaptureState.INGESTED else d.status_code,
        "lease_until": None,
        "finished_at": now,
        "updated_at": now,
        "payload": None,
    }
    if d.state == CaptureState.FILTERED:
        out["filtered_by"] = d.filtered_by[:128]
    return out


# destination_input_id() computed by the database, so one UPDATE marks a whole batch ingested.
_DESTINATION_ID_SQL = Concat(
    Value("cap-", output_field=TextField()),
    Replace(Cast("id", output_field=TextField()), Value("-"), Value(""), output_field=TextField()),
    output_field=TextField(),
)


class _LeaseLost(Exception):
    """Some row was reclaimed by another worker meanwhile: roll back and take the careful path."""


def commit(decisions: list[Decision]) -> list[Decision]:
    """Insert the inputs and record every outcome in ONE transaction (exactly once).

    Fast path: bulk insert, then UPDATEs fenced by (state=processing, attempts=ours); if a fence
    or an insert fails, everything rolls back and `_commit_locked` redoes it row by row.
    """
    if not decisions:
        return []
    planned = [(d, d.state, d.reason, d.status_code, d.filtered_by) for d in decisions]
    try:
        return _commit_fast(decisions)
    except (_LeaseLost, IntegrityError):
        for d, state, reason, code, filtered_by in planned:
            d.state, d.reason, d.status_code, d.filtered_by = state, reason, code, filtered_by
        return _commit_locked(decisions)


def _commit_fast(decisions: list[Decision]) -> list[Decision]:
    now = timezone.now()
    with transaction.atomic():
        _recheck_near_duplicates(decisions)
        ingest([d for d in decisions if d.state == INGEST], careful=False)
        groups: dict[tuple, list[Decision]] = {}
        for d in decisions:
            key = (d.state, d.reason, d.status_code, d.filtered_by, d.attempts)
            groups.setdefault(key, []).append(d)
        for group in groups.values():
            first = group[0]
            updates = _updates_for(first, now)
            if first.state == CaptureState.INGESTED:
                updates["destination_input_id"] = _DESTINATION_ID_SQL
            n = Capture.objects.filter(
                pk__in=[d.capture_id for d in group],
                state=CaptureState.PROCESSING,
                attempts=first.attempts,
            ).update(**updates)
            if n != len({d.capture_id for d in group}):
                raise _LeaseLost()
    flags = {d.collector_id: d.flag for d in decisions if d.flag}
    for collector_id, reason in flags.items():
        _flag_collector(collector_id, reason)
    return decisions


def _commit_locked(decisions: list[Decision]) -> list[Decision]:
    """One transaction: lock the rows still ours, insert inputs, record every outcome."""
    if not decisions:
        return []
    now = timezone.now()
    with transaction.atomic():
        held = dict(
            Capture.objects.select_for_update()
            .filter(pk__in=[d.capture_id for d in decisions], state=CaptureState.PROCESSING)
            .values_list("pk", "attempts")
        )
        ours = [d for d in decisions if held.get(d.capture_id) == d.attempts]
        _recheck_near_duplicates(ours)
        ingest([d for d in ours if d.state == INGEST], careful=True)
        groups: dict[tuple, list[Decision]] = {}
        for d in ours:
            key = (
                d.state,
                d.reason,
                d.status_code,
                d.filtered_by,
                d.state == CaptureState.INGESTED,
            )
            groups.setdefault(key, []).append(d)
        for group in groups.values():
            first = group[0]
            updates = _updates_for(first, now)
            if first.state == CaptureState.INGESTED:
                updates["destination_input_id"] = _DESTINATION_ID_SQL
            Capture.objects.filter(pk__in=[d.capture_id for d in group]).update(**updates)
    flags = {d.collector_id: d.flag for d in ours if d.flag}
    for collector_id, reason in flags.items():
        _flag_collector(collector_id, reason)
    lost = [d for d in decisions if held.get(d.capture_id) != d.attempts]
    if lost:
        log.warning(
            "%d capture(s) were reclaimed by another worker; their outcome was not recorded",
            len(lost),
        )
    return ours


def _flag_collector(collector_id: int, reason: str) -> None:
    """Mark the collector unusable with the reason (and deactivate it: no more captures)."""
    collector_flag(collector_id=collector_id, reason=reason)


def hand_back(claimed: list[tuple[Any, int]], reason: str) -> None:
    """Release claims not worked on (the time budget, a near duplicate of a capture of the same
    batch): due again now, the attempt not counted."""
    now = timezone.now()
    released = []
    for pk, attempts in claimed:
        n = Capture.objects.filter(pk=pk, state=CaptureState.PROCESSING, attempts=attempts).update(
            state=CaptureState.RETRY,
            attempts=F("attempts") - 1,
            lease_until=None,
            next_attempt_at=now,
            reason=reason[:500],
            updated_at=now,
        )
        if n:
            released.append(pk)
    relay.enqueue_publish_many(released)


def mark_retry(decisions: list[Decision], reason: str) -> None:
    """After a failed commit: put the rows we still hold back to `retry` (best effort)."""
    now = timezone.now()
    try:
        with transaction.atomic():
            for d in decisions:
                Capture.objects.filter(
                    pk=d.capture_id, state=CaptureState.PROCESSING, attempts=d.attempts
                ).update(
                    state=CaptureState.RETRY,
                    reason=reason[:512],
                    lease_until=None,
                    next_attempt_at=now + timedelta(seconds=backoff(d.attempts)),
                    updated_at=now,
                )
    except DatabaseError:
        log.exception("could not record retry; the lease will expire and the sweeper republishes")
