"""The after-predict hook: match collectors, admit cheaply, hand the capture over as bytes.

Runs on the prediction's request thread, after the outputs exist. Order per (input, collector):
caller rules -> random sample -> inline pre-queue workflow (on the OUTPUT) -> payload size ->
backlog caps -> rate limits -> hand-off (`handoff.py`: a frame appended to this host's spool).
Every drop is counted with its reason; nothing here ever raises into the prediction, and nothing
here waits on the database or the broker (the rate limiter's Redis call has a 50 ms timeout and a
circuit breaker, and is made only for collectors with rate limits).
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid

from collectors_module.core.errors import SC
from collectors_module.core.ids import random_bits
from collectors_module.workflows.executor import evaluate_inline

from . import conf, counters, handoff, matching, quotas
from .limits import backlog, rate_limiter
from .spool import Record

log = logging.getLogger("collectors.capture")

SAMPLED_OUT = "sampled_out"
PAYLOAD_TOO_LARGE = "payload_too_large"
ERROR = "error"


def draw(request_id: str, input_index: int, collector_pk: int) -> float:
    """A deterministic uniform draw in [0, 1) per (request, input, collector)."""
    digest = hashlib.blake2b(
        f"{request_id}:{input_index}:{collector_pk}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") / 2**64


def _drop(entry_pk: int, reason: str) -> None:
    if reason == SAMPLED_OUT:
        counters.count(entry_pk, "sampled_out")
    elif reason.startswith(("filtered_inline", "class_quota")):
        counters.count(entry_pk, reason[:48])
    else:
        counters.count(entry_pk, f"dropped:{reason}"[:48])


def _payload_size(event, index: int, data) -> int:
    for media in (data.image, data.video, data.audio):
        if media.base64:
            return len(media.base64)
    fetched = (event.fetched or {}).get(index)
    return len(fetched) if fetched else 0


def _inline_filter(entry, output, event, index: int, data) -> tuple[bool, str, bool]:
    """(keep, filtered_by, deferred): run an operator-only pre-queue workflow on the output."""
    wf = entry.pre_queue_workflow
    if wf is None:
        return True, "", False
    if not entry.pre_queue_inline:
        return True, "", True  # needs real models: the worker runs it
    seed_key = f"{event.request_id}:{index}:{entry.pk}"
    gate = quotas.Gate(entry.pk, seed_key)  # counts class-quota nodes (Redis, only if any)
    try:
        keep, filtered_by = evaluate_inline(
            wf,
            output.data,
            source_model_version=event.model_version,
            seed_key=seed_key,
            input_data=data,  # metadata filters read the input's metadata
            quota=gate,
        )
    except Exception:
        log.exception(
            "inline pre-queue workflow failed (collector %s); deferring to the worker", entry.pk
        )
        return True, "", True
    if not keep and gate.reason:
        return False, gate.reason, False
    return bool(keep), filtered_by or wf.public_id, False


def on_prediction(event) -> None:
    """After-predict hook (see module docstring). Never raises, never blocks on I/O."""
    try:
        mv = event.model_version
        caller = event.caller
        if mv is None or caller is None:
            return
        entries = matching.candidates(mv.pk)
        if not entries:
            return
        allowed = [e for e in entries if matching.caller_allowed(e, caller.pk)]
        if not allowed:
            return
        records = admit(event, allowed)
        if records:
            handoff.hand_off(records)
    except Exception:
        log.exception("capture hook failed (request %s)", getattr(event, "request_id", "?"))


def admit(event, entries) -> list[Record]:
    """The records of the captures these collectors admit from this prediction."""
    records: list[Record] = []
    now = time.time()
    max_bytes = conf.max_payload_bytes()
    request_id = str(event.request_id)[:64]
    caller_id = event.caller.pk
    for index, (inp, output) in enumerate(zip(event.inputs, event.outputs, strict=False)):
        if output.status.code != SC.SUCCESS:
            continue  # no prediction for this input: nothing to collect
        data = inp.data
        encoded: tuple[bytes, bytes, bytes] | None = None
        for entry in entries:
            counters.count(entry.pk, "matched")
            try:
                if 0 < entry.sample < 1 and draw(request_id, index, entry.pk) >= entry.sample:
                    _drop(entry.pk, SAMPLED_OUT)
                    continue
                keep, filtered_by, deferred = _inline_filter(entry, output, event, index, data)
                if not keep:
                    quota_drop = filtered_by.startswith(("class_quota:", quotas.UNAVAILABLE))
                    _drop(entry.pk, filtered_by if quota_drop else f"filtered_inline:{filtered_by}")
                    continue
                if _payload_size(event, index, data) > max_bytes:
                    _drop(entry.pk, PAYLOAD_TOO_LARGE)
                    continue
                reason = backlog.check(entry) or rate_limiter.check(entry)
                if reason:
                    _drop(entry.pk, reason)
                    continue
                if encoded is None:  # once per input, shared by every collector that keeps it
                    has_bytes = bool(data.image.base64 or data.video.base64 or data.audio.base64)
                    fetched = b"" if has_bytes else bytes((event.fetched or {}).get(index) or b"")
                    encoded = (data.SerializeToString(), output.SerializeToString(), fetched)
                backlog.note_accepted(entry.pk)  # reserve a place (given back if dropped later)
                records.append(
                    Record(
                        id=uuid.UUID(int=random_bits(128), version=4),  # unique, not secret
                        collector_id=entry.pk,
                        caller_id=caller_id,
                        created_at=now,
                        request_id=request_id,
                        input_index=index,
                        deferred=deferred,
                        data=encoded[0],
                        output=encoded[1],
                        payload=encoded[2],
                    )
                )
            except Exception:
                log.exception("capture admission failed (collector %s)", entry.pk)
                _drop(entry.pk, ERROR)
    return records
