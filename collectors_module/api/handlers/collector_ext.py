"""Collectors' own RPCs (api/proto/collectors_ext.proto): a collector's capture log, stats,
admission limits, deactivation with or without its pending captures, near-duplicate suppression
and the preview of a collector on recent traffic.

Same dispatch as every V2 RPC, so REST (`/api/v2/.../collectors/{id}/captures` and friends) and
gRPC (`collectors.ext.v1.CollectorExtensions`) answer alike. Reads need the app writable like the
collector calls do: a collector's captures hold its callers' inputs, which only the app's owner
(or its app key) may see.
"""

from __future__ import annotations

from google.protobuf import json_format

from collectors_module.api.dispatch import rpc
from collectors_module.api.proto import collectors_ext_pb2 as ext
from collectors_module.capture import selectors as capture_selectors
from collectors_module.collectors import selectors, services
from collectors_module.core.pagination import paginate

LIMIT_FIELDS = ("max_per_minute", "max_per_hour", "max_per_day", "max_pending")
MAX_TIMELINE_MINUTES = 24 * 60


def _iso(value) -> str:
    return value.isoformat().replace("+00:00", "Z") if value is not None else ""


def _collector(ctx, request):
    app = ctx.app(write=True)
    return app, selectors.collector_for_app(app, request.collector_id)


def capture_to_pb(c) -> ext.Capture:
    return ext.Capture(
        id=str(c.pk),
        state=c.state,
        reason=c.reason,
        status_code=c.status_code or 0,
        caller_user_id=c.caller.username if c.caller_id and c.caller else "",
        request_id=c.request_id,
        input_index=c.input_index or 0,
        attempts=c.attempts or 0,
        filtered_by=c.filtered_by,
        destination_input_id=c.destination_input_id,
        created_at=_iso(c.created_at),
        finished_at=_iso(c.finished_at),
    )


def _limits_pb(collector) -> ext.CollectorLimits:
    return ext.CollectorLimits(**selectors.collector_limits(collector))


@rpc("ListCollectorCaptures")
def list_collector_captures(ctx, request: ext.ListCollectorCapturesRequest):
    _app, collector = _collector(ctx, request)
    page = request.page or 1
    rows = paginate(
        capture_selectors.captures_of_collector(collector).select_related("caller"),
        page,
        request.per_page,
    )
    return ext.MultiCaptureResponse(
        collector_id=collector.public_id, page=page, captures=[capture_to_pb(c) for c in rows]
    )


@rpc("GetCollectorStats")
def get_collector_stats(ctx, request: ext.GetCollectorStatsRequest):
    _app, collector = _collector(ctx, request)
    minutes = max(1, min(request.minutes or 60, MAX_TIMELINE_MINUTES))
    stats = capture_selectors.collector_stats(collector)
    stats["last_error_at"] = _iso(stats["last_error_at"])
    timeline = [
        ext.TimelinePoint(minute=_iso(m), accepted=a, ingested=i)
        for m, a, i in capture_selectors.capture_timeline(collector, minutes=minutes)
    ]
    return ext.SingleCollectorStatsResponse(
        collector_id=collector.public_id,
        stats=ext.CollectorStats(**stats),
        limits=_limits_pb(collector),
        timeline=timeline,
    )


@rpc("GetCollectorLimits")
def get_collector_limits(ctx, request: ext.GetCollectorLimitsRequest):
    _app, collector = _collector(ctx, request)
    return ext.SingleCollectorLimitsResponse(
        collector_id=collector.public_id, limits=_limits_pb(collector)
    )


@rpc("PatchCollectorLimits")
def patch_collector_limits(ctx, request: ext.PatchCollectorLimitsRequest):
    app, collector = _collector(ctx, request)
    if request.HasField("limits"):
        limits = json_format.MessageToDict(request.limits)
    else:
        limits = {name: getattr(request, name) for name in LIMIT_FIELDS if request.HasField(name)}
    collector = services.collector_set_limits(
        app=app, collector_id=collector.public_id, limits=limits
    )
    return ext.SingleCollectorLimitsResponse(
        collector_id=collector.public_id, limits=_limits_pb(collector)
    )


@rpc("DeactivateCollector")
def deactivate_collector(ctx, request: ext.DeactivateCollectorRequest):
    app, collector = _collector(ctx, request)
    collector, discarded = services.collector_deactivate(
        app=app, collector_id=collector.public_id, discard_pending=request.discard_pending
    )
    return ext.DeactivateCollectorResponse(collector_id=collector.public_id, discarded=discarded)


def _near_duplicate_pb(collector) -> ext.CollectorNearDuplicate:
    return ext.CollectorNearDuplicate(
        enabled=collector.near_duplicate, max_distance=collector.near_duplicate_max_distance
    )


@rpc("GetCollectorNearDuplicate")
def get_collector_near_duplicate(ctx, request: ext.GetCollectorNearDuplicateRequest):
    _app, collector = _collector(ctx, request)
    return ext.SingleCollectorNearDuplicateResponse(
        collector_id=collector.public_id, near_duplicate=_near_duplicate_pb(collector)
    )


@rpc("PatchCollectorNearDuplicate")
def patch_collector_near_duplicate(ctx, request: ext.PatchCollectorNearDuplicateRequest):
    app, collector = _collector(ctx, request)
    collector = services.collector_set_near_duplicate(
        app=app,
        collector_id=collector.public_id,
        enabled=request.enabled if request.HasField("enabled") else None,
        max_distance=request.max_distance if request.HasField("max_distance") else None,
    )
    return ext.SingleCollectorNearDuplicateResponse(
        collector_id=collector.public_id, near_duplicate=_near_duplicate_pb(collector)
    )


def preview_to_pb(collector, preview) -> ext.PreviewCollectorResponse:
    return ext.PreviewCollectorResponse(
        collector_id=collector.public_id,
        evaluated=len(preview.items),
        kept=preview.kept,
        drops_by_reason=preview.drops_by_reason(),
        truncated=preview.truncated,
        items=[
            ext.PreviewItem(
                capture_id=str(item.capture.pk),
                app_id=item.capture.collector.app.public_id,
                created_at=_iso(item.capture.created_at),
                kept=item.kept,
                decided_by=item.decided_by,
                reason=item.reason,
                summary=item.summary,
                steps=[
                    ext.PreviewStep(rule=s.rule, outcome=s.outcome, details=s.details)
                    for s in item.steps
                ],
            )
            for item in preview.items
        ],
    )


@rpc("PreviewCollector")
def preview_collector(ctx, request: ext.PreviewCollectorRequest):
    app = ctx.app(write=True)
    nd = None
    if request.HasField("near_duplicate"):
        nd = {
            "enabled": request.near_duplicate.enabled,
            "max_distance": request.near_duplicate.max_distance,
        }
    draft = services.collector_draft(
        app=app, actor=ctx.user, collector_pb=request.collector, near_duplicate=nd
    )
    preview = capture_selectors.preview_collector(draft, max_inputs=request.max_inputs)
    return preview_to_pb(draft, preview)
