"""Preview a collector on recent traffic: what would it keep, and why, per rule? Writes nothing.

The rules of a collector as it would be saved (`collectors.services.collector_draft`) are run,
in the order the live collector runs them, over the most recent captures of the same source
model version in the owner's apps (any collector's; one per prediction input), oldest first:

1. caller: the collector's caller rule (and the capture grant);
2. random_sample: the admission draw (for a collector not saved yet the draw uses a stand-in
   id, so WHICH inputs are sampled differs from the live collector; the share does not);
3. pre_queue_workflow: inline on the prediction when operator-only, else run with its models;
4. near_duplicate: the lookup in the destination app (as the worker does it);
5. post_queue_workflow: run with its models, the source prediction reused; an empty output is
   "post-queue output empty".

Class quotas are simulated: each concept starts from the live count in Redis (0 for a new
collector) and counts the inputs the preview keeps, nothing is written to Redis. Random-sample
nodes inside workflows draw with stand-in keys. Image bytes come from the capture while it is
pending, else from the input it was ingested as; a rule that needs the image of a capture that
kept none (filtered captures drop their bytes) is `not_evaluated`. Bounded: at most
COLLECTORS_PREVIEW_MAX_INPUTS captures and COLLECTORS_PREVIEW_TIME_BUDGET_SECONDS of work (the
rest is reported as truncated).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from clarifai_grpc.grpc.api import resources_pb2

from collectors_module.core.errors import SC, ApiError
from collectors_module.inputs.services import input_image_bytes
from collectors_module.workflows.executor import (
    evaluate_inline,
    is_inline,
    prequeue_input,
    run_workflow,
)

from . import conf, near_duplicates, quotas
from .admission import SAMPLED_OUT, draw
from .models import Capture
from .selectors import caller_problem
from .worker.decide import POST_QUEUE_EMPTY

KEPT, DROPPED, NOT_EVALUATED = "kept", "dropped", "not_evaluated"


@dataclass
class Step:
    rule: str
    outcome: str
    details: str = ""


@dataclass
class Item:
    capture: Capture
    kept: bool = True
    decided_by: str = ""
    reason: str = ""
    steps: list[Step] = field(default_factory=list)
    summary: str = ""

    def drop(self, rule: str, reason: str, details: str = "") -> None:
        self.kept, self.decided_by, self.reason = False, rule, reason
        self.steps.append(Step(rule, DROPPED, details or reason))


@dataclass
class Preview:
    items: list[Item]
    truncated: bool = False

    @property
    def kept(self) -> int:
        return sum(1 for i in self.items if i.kept)

    def drops_by_reason(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for i in self.items:
            if not i.kept:
                key = i.reason.split(" ", 1)[0].rstrip(":")
                out[key] = out.get(key, 0) + 1
        return out


class SimulatedQuota:
    """A quota gate that counts locally, starting from the live counts (see module doc)."""

    def __init__(self, collector_pk: int | None, app=None):
        self.app = app
        self.collector_pk = collector_pk
        self.counts: dict[tuple, int] = {}
        self.reason = ""

    def duplicate(self, node_id: str, config, data) -> str:
        match = near_duplicates.lookup(self.app, data, None, config.max_distance)
        self.reason = near_duplicates.reason(match) if match else ""
        return self.reason

    def __call__(self, node_id: str, config, concepts: list) -> str:
        room = []
        for c in concepts:
            key = (node_id, c)
            if key not in self.counts:
                self.counts[key] = (
                    quotas.live_count(self.collector_pk, node_id, c, config)
                    if self.collector_pk
                    else 0
                )
            if self.counts[key] < config.max_per_window:
                room.append(key)
        if not room:
            self.reason = f"class_quota:{concepts[0]}"
            return concepts[0]
        for key in room:
            self.counts[key] += 1
        return ""


def recent_captures(collector, limit: int) -> list[Capture]:
    """The most recent captures of the collector's source version in the owner's apps, one per
    prediction input (several collectors may have captured the same one), oldest first."""
    qs = (
        Capture.objects.filter(
            collector__app__owner_id=collector.app.owner_id,
            collector__source_model_version_id=collector.source_model_version_id,
            output_pb__isnull=False,
        )
        .select_related("collector")
        .order_by("-created_at")
    )
    seen: set[tuple[str, int]] = set()
    out: list[Capture] = []
    for cap in qs[: limit * 4]:
        key = (cap.request_id, cap.input_index)
        if key in seen:
            continue
        seen.add(key)
        out.append(cap)
        if len(out) >= limit:
            break
    out.reverse()
    return out


def _image_bytes(cap: Capture) -> bytes | None:
    if cap.payload:
        return bytes(cap.payload)
    if cap.destination_input_id:
        return input_image_bytes(
            cap.collector.app_id, cap.destination_input_id, max_bytes=conf.max_payload_bytes()
        )
    return None


def _summary(output: resources_pb2.Data) -> str:
    concepts = sorted(output.concepts, key=lambda c: -c.value)[:3]
    if concepts:
        return ", ".join(f"{c.name or c.id} {c.value:.2f}" for c in concepts)
    if output.text.raw:
        return output.text.raw[:60]
    if output.regions:
        return f"{len(output.regions)} regions"
    return ""


def _full_input(data: resources_pb2.Data, cap: Capture) -> resources_pb2.Data | None:
    """The input as the worker has it (image bytes inline), or None when they are gone."""
    if data.text.raw:
        return data
    raw = _image_bytes(cap)
    if raw is None:
        return None
    full = resources_pb2.Data()
    full.CopyFrom(data)
    full.image.base64 = raw
    return full


def _workflow_step(item, rule, workflow, run, gate) -> bool:
    """Record a workflow run; False when it dropped the input."""
    if run.status_code != SC.SUCCESS:
        item.drop(rule, f"workflow {workflow.public_id} failed at {run.failed_node}: {run.details}")
        return False
    if run.keep:
        item.steps.append(Step(rule, KEPT, f"workflow {workflow.public_id} kept it"))
        return True
    node = run.filtered_by or workflow.public_id
    # The reasons the worker records (capture.worker.decide), word for word.
    if rule == "post_queue_workflow":
        reason = (
            f"{gate.reason or POST_QUEUE_EMPTY} (post_queue_workflow {workflow.public_id},"
            f" filtered by {node})"
        )
    else:
        reason = f"pre_queue_workflow {workflow.public_id}: filtered by {node}"
        if gate.reason:
            reason = f"{gate.reason} ({reason})"
    item.drop(rule, reason)
    return False


def evaluate(
    collector, cap: Capture, gate: SimulatedQuota, batch: near_duplicates.Batch | None = None
) -> Item:
    data = cap.input_message()
    output = cap.output_message().data
    item = Item(cap, summary=_summary(output))
    fingerprint = None
    mv = collector.source_model_version
    problem = caller_problem(collector, cap.caller_id)
    if problem:
        item.drop("caller", problem)
        return item
    item.steps.append(Step("caller", KEPT))
    pk = collector.pk or 0
    sample = collector.pre_queue_random_sample
    if 0 < sample < 1:
        d = draw(cap.request_id, cap.input_index, pk)
        if d >= sample:
            item.drop("random_sample", SAMPLED_OUT, f"draw {d:.3f} >= {sample:g}")
            return item
        item.steps.append(Step("random_sample", KEPT, f"draw {d:.3f} < {sample:g}"))
    seed = f"{cap.request_id}:{cap.input_index}:{pk}"
    precomputed = {mv.pk: output}
    full: resources_pb2.Data | None = None
    pre = collector.pre_queue_workflow
    if pre is not None:
        gate.reason = ""
        if is_inline(pre, mv):
            keep, filtered_by = evaluate_inline(
                pre, output, source_model_version=mv, seed_key=seed, input_data=data, quota=gate
            )
            if not keep:
                reason = gate.reason or f"filtered_inline:{filtered_by or pre.public_id}"
                item.drop("pre_queue_workflow", reason, f"inline on the prediction: {reason}")
                return item
            item.steps.append(Step("pre_queue_workflow", KEPT, "inline on the prediction"))
        else:
            full = _full_input(data, cap)
            if full is None:
                item.steps.append(
                    Step("pre_queue_workflow", NOT_EVALUATED, "the image is no longer kept")
                )
            else:
                run = run_workflow(
                    pre,
                    [prequeue_input(full, output)],
                    precomputed=precomputed,
                    seed_key=seed,
                    quota=gate,
                )[0]
                if not _workflow_step(item, "pre_queue_workflow", pre, run, gate):
                    return item
    if collector.near_duplicate:
        raw = _image_bytes(cap) if not data.text.raw else None
        if raw is None and not data.text.raw:
            item.steps.append(Step("near_duplicate", NOT_EVALUATED, "the image is no longer kept"))
        else:
            verdict = near_duplicates.check(collector, data, raw, batch)
            if verdict.match is not None:
                item.drop("near_duplicate", near_duplicates.reason(verdict.match))
                return item
            if verdict.earlier is not None:
                item.drop(
                    "near_duplicate",
                    f"{near_duplicates.REASON}: duplicates capture {verdict.earlier}, kept "
                    "earlier in this preview",
                )
                return item
            item.steps.append(Step("near_duplicate", KEPT, "no duplicate in the destination app"))
            fingerprint = verdict.fingerprint
    post = collector.post_queue_workflow
    if post is not None:
        full = full or _full_input(data, cap)
        if full is None:
            item.steps.append(
                Step("post_queue_workflow", NOT_EVALUATED, "the image is no longer kept")
            )
        else:
            gate.reason = ""
            run = run_workflow(
                post, [full], precomputed=precomputed, seed_key=str(cap.pk), quota=gate
            )[0]
            _workflow_step(item, "post_queue_workflow", post, run, gate)
    if item.kept and batch is not None:
        batch.keep(collector.app_id, fingerprint, cap.pk)
    return item


def preview_collector(collector, *, max_inputs: int = 0) -> Preview:
    """Run `collector`'s rules (saved or not) over recent traffic; see the module docstring."""
    cap_n = conf.preview_max_inputs()
    n = max(1, min(max_inputs or cap_n, cap_n))
    budget = conf.preview_time_budget_seconds()
    started = time.monotonic()
    gate = SimulatedQuota(collector.pk, collector.app)
    batch = (
        near_duplicates.Batch()
    )  # a duplicate of a capture kept earlier is dropped, as it would be
    items: list[Item] = []
    captures = recent_captures(collector, n)
    for i, cap in enumerate(captures):
        if time.monotonic() - started > budget:
            return Preview(items, truncated=i < len(captures))
        try:
            items.append(evaluate(collector, cap, gate, batch))
        except ApiError as exc:
            item = Item(cap)
            item.drop("error", f"{exc.details}")
            items.append(item)
    return Preview(items)
