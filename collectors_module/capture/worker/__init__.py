"""The worker side of the capture path, by role: claim (claim.py), decide (decide.py), commit
(commit.py). `process_batch` runs the three for the ids of one task message.

Every accepted `Capture` row ends in exactly one terminal state with a reason. Delivery is at
least once (acks late, redelivery, the sweeper), so every step is safe to run twice. Transient
errors (database, remote model 5xx, network) put the row in `retry` with a backoff in
`next_attempt_at`; the sweeper publishes it again when it is due.
"""

from __future__ import annotations

import logging
import time

from django.db import InterfaceError, OperationalError
from django.utils import timezone

from collectors_module.collectors.models import Collector
from collectors_module.core import metrics
from collectors_module.core.faults import fault_point

from .. import conf, counters, near_duplicates
from ..models import Capture, CaptureState
from .claim import claim, claim_due
from .commit import commit, hand_back, mark_retry
from .decide import (
    HAND_BACK,
    INGEST,
    Decision,
    decide,
    decide_safely,
    destination_input_id,
    key_problem,
)

__all__ = [
    "Decision",
    "claim",
    "claim_due",
    "commit",
    "decide",
    "destination_input_id",
    "key_problem",
    "process",
    "process_batch",
]

log = logging.getLogger("collectors.worker")

TIME_BUDGET = "handed back: the batch reached its time budget"

METRIC_FOR_STATE = {
    CaptureState.INGESTED: "outcome:ingested",
    CaptureState.FILTERED: "outcome:filtered",
    CaptureState.FAILED: "outcome:failed",
    CaptureState.DROPPED: "outcome:dropped",
    CaptureState.EXPIRED: "outcome:expired",
    "retry": "outcome:retry",
}


def process_batch(capture_ids: list) -> dict[str, str]:
    """Claim, process and finish the given captures that are due. Returns {capture id: state}.

    Safe to run twice or concurrently: rows another worker holds (or that are done) are skipped.
    """
    ids = [str(c) for c in capture_ids if c]
    if not ids:
        return {}
    fault_point("before_claim")
    result: dict[str, str] = {}
    c = claim(ids)
    result.update({str(k): str(v) for k, v in c.ended.items()})
    if not c.claimed:
        return result
    fault_point("after_claim")
    metrics.CLAIM_BATCH.observe(len(c.claimed))
    attempts = dict(c.claimed)
    # In the order they were captured: of two near duplicates, the earlier is the one kept.
    captures = list(
        Capture.objects.select_related("caller")
        .filter(pk__in=list(attempts))
        .order_by("created_at", "pk")
    )
    # Each collector (with its app, key, source and workflows) is read once per batch, fresh.
    collectors = Collector.objects.select_related(
        "app",
        "post_inputs_key",
        "source_model_version__model__app",
        "pre_queue_workflow",
        "post_queue_workflow",
    ).in_bulk({cap.collector_id for cap in captures})
    captures = [cap for cap in captures if cap.collector_id in collectors]  # deleted meanwhile
    for cap in captures:
        cap.collector = collectors[cap.collector_id]
    # A capture missing now was deleted with its collector: nothing to do.
    # Enrichment is time-boxed per task: what does not fit is handed back (not counted as an
    # attempt) and published again, so slow workflows never push a batch past the time limit.
    budget = conf.batch_time_budget()
    started = time.monotonic()
    decisions = []
    handed_back: dict[str, list] = {}  # reason -> [(pk, attempts)]
    batch = near_duplicates.Batch()  # what this batch will ingest, for near-duplicate checks
    for cap in captures:
        if decisions and time.monotonic() - started > budget:
            handed_back.setdefault(TIME_BUDGET, []).append((cap.pk, attempts[cap.pk]))
            continue
        d = decide_safely(cap, attempts[cap.pk], batch)
        if d.state == HAND_BACK:
            handed_back.setdefault(d.reason, []).append((cap.pk, attempts[cap.pk]))
            continue
        if d.state == INGEST:
            batch.keep(cap.collector.app_id, d.fingerprint, cap.pk)
        decisions.append(d)
    try:
        done = commit(decisions)
    except (OperationalError, InterfaceError) as exc:
        mark_retry(decisions, f"database: {exc}")
        for d in decisions:
            d.state = "retry"
        done = decisions
    # After the commit, so a near duplicate decided again finds the input it duplicates.
    for reason, claimed in handed_back.items():
        hand_back(claimed, reason)
        for pk, _ in claimed:
            result[str(pk)] = str(CaptureState.RETRY)
    fault_point("after_remote_post")
    created = {cap.pk: cap.created_at for cap in captures}
    ended_at = timezone.now()
    for d in done:
        result[str(d.capture_id)] = str(d.state)
        metric = METRIC_FOR_STATE.get(d.state)
        if metric and d.collector_id:
            counters.count(d.collector_id, metric)
            born = created.get(d.capture_id)
            age = (ended_at - born).total_seconds() if born else None
            metrics.capture_finished(d.collector_id, d.state, d.status_code, age, d.reason)
            log.debug(
                "capture %s %s",
                d.capture_id,
                d.state,
                extra={"capture_id": str(d.capture_id), "collector": d.collector_id,
                       "state": str(d.state), "reason": d.reason[:200],
                       "duration_ms": round(age * 1000, 1) if age is not None else None},
            )  # fmt: skip
    fault_point("after_mark_ingested")
    return result


def process(capture_id) -> str | None:
    """Process one capture; returns its state afterwards (None if it does not exist)."""
    states = process_batch([capture_id])
    if str(capture_id) in states:
        return states[str(capture_id)]
    row = Capture.objects.filter(pk=capture_id).values_list("state", flat=True).first()
    return row
