"""The worker side of the capture path: claim, re-check, enrich, ingest, record one end state.

Every accepted `Capture` row ends in exactly one terminal state with a reason. Delivery is at least
once (acks late, redelivery, the sweeper), so every step here is safe to run twice:

* claim is a compare-and-set with a lease (`attempts` is incremented at claim and is the fencing
  token: a worker whose lease was taken over cannot record an outcome);
* the destination input id is derived from the capture id, and the input insert and the
  `ingested` mark commit in ONE transaction, so a retry finds the input (INPUT_DUPLICATE) and
  never creates a second one.

Transient errors (database, remote model 5xx, network) put the row in `retry` with a backoff in
`next_attempt_at`; the sweeper publishes it again when it is due.
"""

from __future__ import annotations

import logging
import os
import random
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from clarifai_grpc.grpc.api import resources_pb2
from django.conf import settings
from django.db import (
    DatabaseError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connection,
    transaction,
)
from django.db.models import F, Q, TextField, Value
from django.db.models.functions import Cast, Concat, Replace
from django.utils import timezone

from collectors_module.core.errors import SC, ApiError, code_name
from collectors_module.core.faults import fault_point
from collectors_module.core.protojson import from_dict

from .models import Capture, CaptureState, Collector

log = logging.getLogger("collectors.pipeline")

INGEST = "ingest"  # internal decision: post the input, then mark ingested

# Status codes that mean "try again later" when a model node or the destination reports them.
TRANSIENT_CODES = frozenset(
    getattr(SC, name)
    for name in (
        "INTERNAL_SERVER_ISSUE",
        "INTERNAL_FETCHING_ISSUE",
        "INTERNAL_DATABASE_ISSUE",
        "INTERNAL_UNEXPECTED_TIMEOUT",
        "INTERNAL_UNEXPECTED_V1",
        "INTERNAL_UNEXPECTED_PANIC",
        "INTERNAL_UNEXPECTED_SPIRE",
        "MODEL_BUSY_PLEASE_RETRY",
        "MODEL_DEPLOYING",
        "MODEL_QUEUED_FOR_DEPLOYMENT",
        "INPUT_CONNECTION_FAILED",
        "CONN_THROTTLED",
        "RPC_REQUEST_TIMEOUT",
        "RPC_SERVER_UNAVAILABLE",
        "MODEL_PREDICTION_FAILED",
    )
    if hasattr(SC, name)
)


def _required_scopes() -> tuple[str, ...]:
    """Scopes a post_inputs_key needs at send time (the same rule as at create)."""
    try:
        from .services import post_inputs_scopes

        return tuple(post_inputs_scopes())
    except ImportError:
        from collectors_module.core.descriptors import get_rpc

        return tuple(dict.fromkeys((*get_rpc("PostInputs").scopes, "Models:Get", "Predict")))


# ---------------------------------------------------------------------------------------- settings


def _setting(name: str, default: float) -> float:
    env = os.environ.get(name)
    if env not in (None, ""):
        return float(env)
    return float(getattr(settings, name, default))


def lease_seconds() -> float:
    """How long a claim is valid; must exceed the task's hard time limit (see checks.py)."""
    return _setting("COLLECTORS_LEASE_SECONDS", 150)


def max_attempts() -> int:
    return int(_setting("COLLECTORS_MAX_ATTEMPTS", 5))


def max_age_seconds() -> float:
    """A capture older than this when claimed ends `expired` instead of being ingested late."""
    return _setting("COLLECTORS_CAPTURE_MAX_AGE_SECONDS", 24 * 3600)


def retry_base_seconds() -> float:
    return _setting("COLLECTORS_RETRY_BASE_SECONDS", 5)


def retry_max_seconds() -> float:
    return _setting("COLLECTORS_RETRY_MAX_SECONDS", 600)


def batch_size() -> int:
    """Captures one task claims and ingests in one transaction."""
    return int(_setting("COLLECTORS_BATCH_SIZE", 250))


def batch_time_budget() -> float:
    """Seconds of enrichment one task may spend before handing the rest of its batch back."""
    soft = float(getattr(settings, "CELERY_TASK_SOFT_TIME_LIMIT", 100) or 100)
    return _setting("COLLECTORS_BATCH_TIME_BUDGET_SECONDS", soft * 0.5)


def backoff(attempts: int) -> float:
    """Exponential backoff with +-20% jitter, capped."""
    delay = min(retry_max_seconds(), retry_base_seconds() * (2 ** max(0, attempts - 1)))
    return delay * random.uniform(0.8, 1.2)


# ---------------------------------------------------------------------------------------- counters


def _count(collector_id: int, metric: str, n: int = 1) -> None:
    """Per-collector counters (collectors.counters, written by the collectors-api part)."""
    if n <= 0:
        return
    try:
        from . import counters  # type: ignore[attr-defined]
    except ImportError:
        return
    try:
        counters.count(collector_id, metric, n)
    except Exception:  # counting must never change an outcome
        log.exception("counting %s failed", metric)


# ---------------------------------------------------------------------------------------- decisions


@dataclass
class Decision:
    """What to do with one claimed capture; `state` is a terminal state, `retry` or INGEST."""

    capture_id: Any
    attempts: int
    collector_id: int | None
    state: str
    reason: str = ""
    status_code: int = 0
    filtered_by: str = ""
    flag: str = ""  # flag the collector with this reason
    app: Any = None
    input_pb: Any = None
    image_bytes: bytes | None = None
    annotations: list[dict] | None = None
    metadata: dict | None = None
    destination_input_id: str = ""
    extra: dict = field(default_factory=dict)


class Transient(Exception):
    """A failure worth retrying later (status code kept for the row)."""

    def __init__(self, reason: str, code: int = 0):
        super().__init__(reason)
        self.code = code


def destination_input_id(capture_id) -> str:
    """The destination input id of a capture: the same on every attempt."""
    hex_id = capture_id.hex if hasattr(capture_id, "hex") else str(capture_id).replace("-", "")
    return f"cap-{hex_id}"


def key_problem(collector: Collector) -> str:
    """Why the collector's post_inputs_key cannot post now ("" when it can)."""
    key = collector.post_inputs_key
    if key is None:
        return "post_inputs_key was deleted"
    if key.revoked_at is not None:
        return f"post_inputs_key {key.public_id} was revoked"
    if not key.is_usable:
        return f"post_inputs_key {key.public_id} has expired"
    if key.owner_id != collector.app.owner_id:
        return f"post_inputs_key {key.public_id} does not belong to the app owner"
    if key.app_id is not None and key.app_id != collector.app_id:
        return f"post_inputs_key {key.public_id} is bound to another app"
    missing = key.missing_scopes(_required_scopes())
    if missing:
        return f"post_inputs_key {key.public_id} lacks scopes: {', '.join(missing)}"
    return ""


def _source_json(capture: Capture) -> dict:
    """The source model's output `Data` (JSON) for this capture's input."""
    outputs = capture.outputs or []
    if isinstance(outputs, dict):
        outputs = [outputs]
    if not outputs or not isinstance(outputs[0], dict):
        return {}
    first = outputs[0]
    if isinstance(first.get("data"), dict):
        return first["data"]
    return first


def _source_data(capture: Capture) -> resources_pb2.Data:
    """The source model's output `Data` for this capture's input (from the stored outputs)."""
    return from_dict(_source_json(capture), resources_pb2.Data)


def _input_data(capture: Capture) -> resources_pb2.Data:
    data = from_dict(capture.input_data or {}, resources_pb2.Data)
    data.image.ClearField("base64")
    return data


def _media_bytes(capture: Capture) -> bytes | None:
    if capture.payload is None:
        return None
    raw = bytes(capture.payload)
    return raw or None


def _with_bytes(data: resources_pb2.Data, capture: Capture) -> resources_pb2.Data:
    """The input as a runner needs it: image bytes inline (fetched safely when only a URL is kept)."""
    full = resources_pb2.Data()
    full.CopyFrom(data)
    raw = _media_bytes(capture)
    if raw is not None and not data.text.raw:
        full.image.base64 = raw
    elif raw is None and data.image.url:
        from collectors_module.core.safe_fetch import fetch

        try:
            full.image.base64 = fetch(data.image.url).content
        except ApiError as exc:
            if exc.code in TRANSIENT_CODES:
                raise Transient(f"fetching the input URL failed: {exc.details}", exc.code) from exc
            raise
    return full


def _run(workflow, data: resources_pb2.Data, precomputed: dict, seed_key: str):
    """One workflow run on one input; raises Transient when a node failed for a passing reason."""
    from collectors_module.workflows.executor import run_workflow

    run = run_workflow(workflow, [data], precomputed=precomputed, seed_key=seed_key)[0]
    for node in run.outputs:
        if node.status_code and node.status_code in TRANSIENT_CODES:
            raise Transient(
                f"workflow {workflow.public_id} node {node.node_id} failed: "
                f"{code_name(node.status_code)} {node.details}".strip(),
                node.status_code,
            )
    return run


def _merge_outputs(target: resources_pb2.Data, run) -> str:
    """Copy a workflow run's concepts, regions and generated text into the input; returns the text."""
    concepts: dict[str, resources_pb2.Concept] = {c.id: c for c in target.concepts}
    generated = ""
    for node in run.outputs:
        if node.status_code not in (0, SC.SUCCESS) or node.data is None:
            continue
        for concept in node.data.concepts:
            held = concepts.get(concept.id)
            if held is None or concept.value > held.value:
                concepts[concept.id] = concept
        target.regions.extend(node.data.regions)
        if node.data.text.raw:
            generated = node.data.text.raw
    del target.concepts[:]
    target.concepts.extend(concepts.values())
    return generated


def _is_deferred_pre_queue(capture: Capture) -> bool:
    """Admission marked the capture: its pre-queue workflow needs real models (run it here)."""
    return (
        bool(getattr(capture, "pre_queue_pending", False))
        and capture.collector.pre_queue_workflow is not None
    )


def decide(capture: Capture, attempts: int) -> Decision:
    """Re-check the collector and key, run workflows, prepare the input. No writes."""
    collector = capture.collector
    d = Decision(capture.pk, attempts, collector.pk, state=CaptureState.FAILED)
    if not collector.is_active:
        d.state, d.reason = CaptureState.DROPPED, "collector_inactive"
        return d
    problem = key_problem(collector)
    if problem:
        d.state, d.status_code = CaptureState.FAILED, SC.COLLECTOR_POST_INPUT_FAILED
        d.reason = f"{problem}; the capture was not posted"
        d.flag = problem
        return d

    data = _input_data(capture)
    seed_key = str(capture.pk)
    if collector.post_queue_workflow_id or _is_deferred_pre_queue(capture):
        precomputed = {collector.source_model_version_id: _source_data(capture)}
    full = None
    if _is_deferred_pre_queue(capture):
        full = _with_bytes(data, capture)
        run = _run(collector.pre_queue_workflow, full, precomputed, seed_key)
        if not run.keep:
            d.state = CaptureState.FILTERED
            d.filtered_by = run.filtered_by or collector.pre_queue_workflow.public_id
            d.reason = f"pre_queue_workflow {collector.pre_queue_workflow.public_id}: filtered by {d.filtered_by}"
            return d

    generated = ""
    target = resources_pb2.Data()
    target.CopyFrom(data)
    if collector.post_queue_workflow is not None:
        full = full or _with_bytes(data, capture)
        run = _run(collector.post_queue_workflow, full, precomputed, seed_key)
        if not run.keep:
            d.state = CaptureState.FILTERED
            d.filtered_by = run.filtered_by or collector.post_queue_workflow.public_id
            d.reason = f"post_queue_workflow {collector.post_queue_workflow.public_id}: no output (filtered by {d.filtered_by})"
            return d
        generated = _merge_outputs(target, run)
    fault_point("after_enrich")

    provenance = {
        "collector_id": collector.public_id,
        "source_model_version": collector.model_version_id,
        "source_model": f"{collector.model_user_id}/{collector.model_app_id}/{collector.model_id}",
        "caller": capture.caller.username if capture.caller_id and capture.caller else "",
        "capture_id": str(capture.pk),
        "captured_at": capture.created_at.isoformat(),
    }
    raw = _media_bytes(capture)
    if data.text.raw:
        # A text input keeps its text; generated text goes into the provenance metadata.
        if generated:
            provenance["generated_text"] = generated
    else:
        d.image_bytes = raw
        if generated:
            target.text.raw = generated
    d.state = INGEST
    d.app = collector.app
    d.destination_input_id = destination_input_id(capture.pk)
    d.input_pb = resources_pb2.Input(id=d.destination_input_id, data=target)
    d.metadata = {"collector": provenance}
    if collector.collect_outputs:
        d.annotations = [
            {
                "model_id": collector.model_id,
                "model_version_id": collector.model_version_id,
                "model_user_id": collector.model_user_id,
                "model_app_id": collector.model_app_id,
                "data": _source_json(capture),
            }
        ]
    return d


def _decide_safely(capture: Capture, attempts: int) -> Decision:
    try:
        return decide(capture, attempts)
    except Transient as exc:
        return Decision(
            capture.pk, attempts, capture.collector_id, "retry", str(exc)[:500], exc.code
        )
    except ApiError as exc:
        if exc.code in TRANSIENT_CODES:
            return Decision(
                capture.pk, attempts, capture.collector_id, "retry", exc.details[:500], exc.code
            )
        return Decision(
            capture.pk,
            attempts,
            capture.collector_id,
            CaptureState.FAILED,
            f"{code_name(exc.code)}: {exc.details}"[:500],
            exc.code,
        )
    except (OperationalError, InterfaceError) as exc:
        return Decision(
            capture.pk, attempts, capture.collector_id, "retry", f"database: {exc}"[:500]
        )
    except Exception as exc:  # unknown: retry; max_attempts bounds a poison capture
        log.exception("capture %s: unexpected error", capture.pk)
        return Decision(
            capture.pk,
            attempts,
            capture.collector_id,
            "retry",
            f"{type(exc).__name__}: {exc}"[:500],
        )


# ---------------------------------------------------------------------------------------- claim


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
        now + timedelta(seconds=lease_seconds()),
        now,
        [str(i) for i in capture_ids],
        now - timedelta(seconds=max_age_seconds()),
        max_attempts(),
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
        too_old = now - timedelta(seconds=max_age_seconds())
        limit = max_attempts()
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
                reason=f"expired: older than {int(max_age_seconds())} s when claimed",
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
                lease_until=now + timedelta(seconds=lease_seconds()),
                updated_at=now,
            )
    for r in expired:
        _count(r[3], "outcome:expired")
    for r in poisoned:
        _count(r[3], "outcome:failed")
    return Claim([(r[0], r[1] + 1) for r in live], ended)


# ---------------------------------------------------------------------------------------- commit


def _ingest_one(d: Decision) -> None:
    """Insert the destination input (inside the caller's transaction, in a savepoint)."""
    from collectors_module.inputs.services import input_create

    try:
        # input_create runs in its own savepoint (nested atomic): a refused input leaves our
        # transaction usable; validation errors are raised before any write.
        input_create(
            app=d.app,
            input_pb=d.input_pb,
            image_bytes=d.image_bytes,
            annotations=d.annotations,
            extra_metadata=d.metadata,
        )
        d.state, d.reason = CaptureState.INGESTED, ""
    except ApiError as exc:
        if exc.code == SC.INPUT_DUPLICATE:
            # An earlier attempt committed the input (crash before the ack): already ingested.
            d.state, d.reason = (
                CaptureState.INGESTED,
                "input_duplicate: ingested by an earlier attempt",
            )
        else:
            _refused(d, exc)
    except IntegrityError:
        d.state, d.reason = CaptureState.INGESTED, "input_duplicate: ingested by an earlier attempt"
    except (OperationalError, InterfaceError):
        raise
    except (DatabaseError, OSError) as exc:
        d.state, d.reason = "retry", f"destination: {type(exc).__name__}: {exc}"[:500]


def _refused(d: Decision, exc: ApiError) -> None:
    if exc.code in TRANSIENT_CODES:
        d.state, d.reason, d.status_code = "retry", f"destination: {exc.details}"[:500], exc.code
    else:
        d.state = CaptureState.FAILED
        d.status_code = SC.COLLECTOR_POST_INPUT_FAILED
        d.reason = f"destination refused the input: {code_name(exc.code)} {exc.details}"[:500]


def _ingest_many(ds: list[Decision], *, savepoint: bool = True) -> None:
    """Insert many destination inputs with one existence check and one INSERT per app.

    Same validation and columns as `inputs.services.input_create` (its `_prepare` step); falls
    back to `input_create` one by one if the bulk path is unavailable or an insert conflicts.
    """
    if not ds:
        return
    if len(ds) == 1 and savepoint:
        _ingest_one(ds[0])
        return
    try:
        from collectors_module.inputs.models import Input, input_blob_path
        from collectors_module.inputs.services import _prepare, _save_blob
    except ImportError:
        for d in ds:
            _ingest_one(d)
        return
    by_app: dict[int, list[Decision]] = {}
    for d in ds:
        by_app.setdefault(d.app.pk, []).append(d)
    for group in by_app.values():
        app = group[0].app
        prepared = []
        for d in group:
            try:
                prepared.append((d, _prepare(d.input_pb, d.image_bytes, d.annotations, d.metadata)))
            except ApiError as exc:
                _refused(d, exc)
        existing = set(
            Input.objects.filter(
                app=app, public_id__in=[p.public_id for _, p in prepared]
            ).values_list("public_id", flat=True)
        )
        rows = []
        for d, p in prepared:
            if p.public_id in existing:
                d.state, d.reason = (
                    CaptureState.INGESTED,
                    "input_duplicate: ingested by an earlier attempt",
                )
                continue
            row = Input(
                app=app,
                public_id=p.public_id,
                data=p.data_json,
                image_url=p.image_url,
                text=p.text,
                annotations=p.annotations,
                content_hash=p.content_hash,
                status_code=SC.INPUT_SUCCESS,
            )
            try:
                if p.image_bytes is not None:
                    row.image.name = _save_blob(input_blob_path(row, ""), p.image_bytes)
            except OSError as exc:
                d.state, d.reason = "retry", f"destination: blob storage: {exc}"[:500]
                continue
            rows.append((d, row))
        if not savepoint:  # the caller rolls back everything on a conflict
            Input.objects.bulk_create([row for _, row in rows])
            for d, _ in rows:
                d.state, d.reason = CaptureState.INGESTED, ""
            continue
        try:
            with transaction.atomic():
                Input.objects.bulk_create([row for _, row in rows])
        except IntegrityError:
            for d, _ in rows:  # someone inserted one of them meanwhile: one by one
                _ingest_one(d)
            continue
        for d, _ in rows:
            d.state, d.reason = CaptureState.INGESTED, ""


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
    planned = [(d, d.state, d.reason, d.status_code) for d in decisions]
    try:
        return _commit_fast(decisions)
    except (_LeaseLost, IntegrityError):
        for d, state, reason, code in planned:
            d.state, d.reason, d.status_code = state, reason, code
        return _commit_locked(decisions)


def _commit_fast(decisions: list[Decision]) -> list[Decision]:
    now = timezone.now()
    with transaction.atomic():
        _ingest_many([d for d in decisions if d.state == INGEST], savepoint=False)
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
        _ingest_many([d for d in ours if d.state == INGEST])
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
    try:
        from .services import collector_flag
    except ImportError:
        Collector.objects.filter(pk=collector_id).update(
            flagged_reason=reason[:512], flagged_at=timezone.now()
        )
        return
    collector_flag(collector_id=collector_id, reason=reason)


def _hand_back(claimed: list[tuple[Any, int]]) -> None:
    """Release claims not worked on (time budget): due again now, the attempt not counted."""
    now = timezone.now()
    released = []
    for pk, attempts in claimed:
        n = Capture.objects.filter(pk=pk, state=CaptureState.PROCESSING, attempts=attempts).update(
            state=CaptureState.RETRY,
            attempts=F("attempts") - 1,
            lease_until=None,
            next_attempt_at=now,
            reason="handed back: the batch reached its time budget",
            updated_at=now,
        )
        if n:
            released.append(pk)
    if released:
        from .relay import enqueue_publish

        for pk in released:
            enqueue_publish(pk)


def _mark_retry(decisions: list[Decision], reason: str) -> None:
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


# ---------------------------------------------------------------------------------------- entry points


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
    attempts = dict(c.claimed)
    captures = list(Capture.objects.select_related("caller").filter(pk__in=list(attempts)))
    # Each collector (with its app, key, source and workflows) is read once per batch, fresh.
    collectors = Collector.objects.select_related(
        "app",
        "post_inputs_key",
        "source_model_version",
        "pre_queue_workflow",
        "post_queue_workflow",
    ).in_bulk({cap.collector_id for cap in captures})
    captures = [cap for cap in captures if cap.collector_id in collectors]  # deleted meanwhile
    for cap in captures:
        cap.collector = collectors[cap.collector_id]
    # A capture missing now was deleted with its collector: nothing to do.
    # Enrichment is time-boxed per task: what does not fit is handed back (not counted as an
    # attempt) and published again, so slow workflows never push a batch past the time limit.
    budget = batch_time_budget()
    started = time.monotonic()
    decisions = []
    handed_back = []
    for cap in captures:
        if decisions and time.monotonic() - started > budget:
            handed_back.append((cap.pk, attempts[cap.pk]))
            continue
        decisions.append(_decide_safely(cap, attempts[cap.pk]))
    if handed_back:
        _hand_back(handed_back)
        for pk, _ in handed_back:
            result[str(pk)] = str(CaptureState.RETRY)
    try:
        done = commit(decisions)
    except (OperationalError, InterfaceError) as exc:
        _mark_retry(decisions, f"database: {exc}")
        for d in decisions:
            d.state = "retry"
        done = decisions
    fault_point("after_remote_post")
    for d in done:
        result[str(d.capture_id)] = str(d.state)
        metric = METRIC_FOR_STATE.get(d.state)
        if metric and d.collector_id:
            _count(d.collector_id, metric)
    fault_point("after_mark_ingested")
    return result


def process(capture_id) -> str | None:
    """Process one capture; returns its state afterwards (None if it does not exist)."""
    states = process_batch([capture_id])
    if str(capture_id) in states:
        return states[str(capture_id)]
    row = Capture.objects.filter(pk=capture_id).values_list("state", flat=True).first()
    return row


def claim_due(limit: int) -> list[str]:
    """Ids of captures that are due now (accepted, retry due, lease expired), oldest first."""
    now = timezone.now()
    return [
        str(pk)
        for pk in Capture.objects.filter(_claimable(now))
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    ]
