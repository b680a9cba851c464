"""Deciding what to do with a claimed capture: re-check, enrich, prepare the input. No writes.

The collector, its owner and its key are re-read and re-checked (they may have changed since
the capture was admitted); a pre-queue workflow that needs real models runs here; the post-queue
workflow runs on the ORIGINAL input, reusing the source prediction instead of recomputing it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from clarifai_grpc.grpc.api import resources_pb2
from django.db import InterfaceError, OperationalError

from collectors_module.collectors.models import Collector
from collectors_module.collectors.services import post_inputs_scopes
from collectors_module.core.errors import SC, ApiError, code_name
from collectors_module.core.faults import fault_point
from collectors_module.core.protojson import to_dict
from collectors_module.core.safe_fetch import fetch
from collectors_module.workflows.executor import run_workflow

from .. import near_duplicates
from ..models import Capture, CaptureState
from ..quotas import Gate, QuotaUnavailable
from ..selectors import caller_problem

log = logging.getLogger("collectors.pipeline")

INGEST = "ingest"  # internal decision: post the input, then mark ingested
HAND_BACK = "hand_back"  # internal decision: release the claim uncounted, decide it again later
DISCARDED = "discarded"
COLLECTOR_INACTIVE = "collector_inactive"
# The product page's rule: no field of the post-queue output holds a non-default value
# (core.content.has_content, through the executor's `keep`). The input is not posted.
POST_QUEUE_EMPTY = "post-queue output empty"

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
    fingerprint: Any = None  # near-duplicate check: kept in the batch when this one is ingested
    near_duplicate_distance: int = 0
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
        return f"post_inputs_key {key.display_name} was revoked"
    if not key.is_usable:
        return f"post_inputs_key {key.display_name} has expired"
    if key.owner_id != collector.app.owner_id:
        return f"post_inputs_key {key.display_name} does not belong to the app owner"
    if key.app_id is not None and key.app_id != collector.app_id:
        return f"post_inputs_key {key.display_name} is bound to another app"
    missing = key.missing_scopes(post_inputs_scopes())
    if missing:
        return f"post_inputs_key {key.display_name} lacks scopes: {', '.join(missing)}"
    return ""


def _source_data(capture: Capture) -> resources_pb2.Data:
    """The source model's output `Data` for this capture's input."""
    return capture.output_message().data


def _input_data(capture: Capture) -> resources_pb2.Data:
    return capture.input_message()


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
        try:
            full.image.base64 = fetch(data.image.url).content
        except ApiError as exc:
            if exc.code in TRANSIENT_CODES:
                raise Transient(f"fetching the input URL failed: {exc.details}", exc.code) from exc
            raise
    return full


def _run(workflow, data: resources_pb2.Data, precomputed: dict, seed_key: str, gate=None):
    """One workflow run on one input; raises Transient when a node failed for a passing reason."""
    try:
        run = run_workflow(
            workflow, [data], precomputed=precomputed, seed_key=seed_key, quota=gate
        )[0]
    except QuotaUnavailable as exc:
        raise Transient(str(exc), SC.INTERNAL_SERVER_ISSUE) from exc
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


def decide(capture: Capture, attempts: int, batch: near_duplicates.Batch | None = None) -> Decision:
    """Re-check the collector and key, run workflows, prepare the input. No writes."""
    collector = capture.collector
    d = Decision(capture.pk, attempts, collector.pk, state=CaptureState.FAILED)
    if collector.discarded_before is not None and capture.created_at < collector.discarded_before:
        d.state, d.reason = CaptureState.DROPPED, "discarded: the user discarded pending captures"
        return d
    if not collector.is_active and (
        collector.deactivated_at is None or capture.created_at >= collector.deactivated_at
    ):
        # Made after the deactivation (captures accepted before it are still delivered).
        d.state, d.reason = CaptureState.DROPPED, COLLECTOR_INACTIVE
        return d
    problem = key_problem(collector)
    if problem:
        d.state, d.status_code = CaptureState.FAILED, SC.COLLECTOR_POST_INPUT_FAILED
        d.reason = f"{problem}; the capture was not posted"
        d.flag = problem
        return d
    refused = caller_problem(collector, capture.caller_id)
    if refused:
        # e.g. the caller revoked their grant since the capture was admitted.
        d.state, d.reason = CaptureState.DROPPED, refused
        return d

    data = _input_data(capture)
    seed_key = str(capture.pk)
    if collector.post_queue_workflow_id or _is_deferred_pre_queue(capture):
        precomputed = {collector.source_model_version_id: _source_data(capture)}
    full = None
    if _is_deferred_pre_queue(capture):
        full = _with_bytes(data, capture)
        gate = Gate(collector.pk, seed_key, strict=True, app=collector.app)
        run = _run(collector.pre_queue_workflow, full, precomputed, seed_key, gate)
        if not run.keep:
            d.state = CaptureState.FILTERED
            d.filtered_by = run.filtered_by or collector.pre_queue_workflow.public_id
            d.reason = f"pre_queue_workflow {collector.pre_queue_workflow.public_id}: filtered by {d.filtered_by}"
            if gate.reason:
                d.reason = f"{gate.reason} ({d.reason})"
            return d

    verdict = near_duplicates.check(collector, data, _media_bytes(capture), batch)
    if verdict.match is not None:
        d.state, d.filtered_by = CaptureState.FILTERED, near_duplicates.REASON
        d.reason = near_duplicates.reason(verdict.match)
        return d
    if verdict.earlier is not None:
        d.state = HAND_BACK
        d.reason = (
            f"handed back: a near duplicate of capture {verdict.earlier} of the same batch, "
            "decided again once that one is ingested"
        )
        return d
    d.fingerprint, d.near_duplicate_distance = verdict.fingerprint, verdict.max_distance

    generated = ""
    target = resources_pb2.Data()
    target.CopyFrom(data)
    if collector.post_queue_workflow is not None:
        full = full or _with_bytes(data, capture)
        gate = Gate(collector.pk, seed_key, strict=True, app=collector.app)
        run = _run(collector.post_queue_workflow, full, precomputed, seed_key, gate)
        if not run.keep:
            d.state = CaptureState.FILTERED
            d.filtered_by = run.filtered_by or collector.post_queue_workflow.public_id
            d.reason = (
                f"{gate.reason or POST_QUEUE_EMPTY} (post_queue_workflow {collector.post_queue_workflow.public_id},"
                f" filtered by {d.filtered_by})"
            )
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
                "data": to_dict(_source_data(capture), compact=True),
            }
        ]
    return d


def decide_safely(
    capture: Capture, attempts: int, batch: near_duplicates.Batch | None = None
) -> Decision:
    """`decide`, with every failure turned into a retry or a terminal decision."""
    try:
        return decide(capture, attempts, batch)
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
