"""Reads of the capture engine's tables: capture logs, stats, timelines, backlog counts, and
the caller rules as the database says now (for the worker)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from django.db import connection
from django.db.models import Count, F, Min, Q, Sum
from django.db.models.functions import TruncMinute
from django.utils import timezone

from collectors_module.accounts.models import CaptureGrant
from collectors_module.collectors.models import Collector

from . import spool
from .models import PENDING_STATES, TERMINAL_STATES, Capture, CaptureState, CollectorCounter


def captures_of_collector(collector):
    """The capture log of one collector, newest first (payload bytes deferred)."""
    return (
        Capture.objects.filter(collector=collector)
        .select_related("caller")
        .defer("payload", "input_data", "outputs")
        .order_by("-created_at", "-pk")
    )


def _empty_stats() -> dict:
    return {
        "matched": 0,
        "sampled_out": 0,
        "dropped": 0,
        "accepted": 0,
        "filtered": 0,
        "ingested": 0,
        "failed": 0,
        "pending": 0,
        "expired": 0,
        "discarded": 0,
        "drops_by_reason": {},
        "last_error": "",
        "last_error_at": None,
    }


def collectors_stats(collectors) -> dict[int, dict]:
    """collector pk -> stats (see collector_stats), for many collectors in three queries."""
    collectors = list(collectors)
    pks = [c.pk for c in collectors]
    stats = {c.pk: _empty_stats() for c in collectors}
    if not pks:
        return stats
    purged: list[dict] = []
    for row in (
        CollectorCounter.objects.filter(collector_id__in=pks)
        .values("collector_id", "metric")
        .annotate(n=Sum("count"))
    ):
        s = stats[row["collector_id"]]
        metric, n = row["metric"], int(row["n"] or 0)
        if metric in ("matched", "sampled_out"):
            s[metric] += n
        elif metric.startswith("filtered_inline"):
            s["filtered"] += n
            s["drops_by_reason"][metric] = s["drops_by_reason"].get(metric, 0) + n
        elif metric.startswith("dropped:"):
            reason = metric.split(":", 1)[1]
            s["dropped"] += n
            s["drops_by_reason"][reason] = s["drops_by_reason"].get(reason, 0) + n
        elif metric.startswith("purged:"):  # rows deleted by retention (capture/retention.py)
            purged.append({"collector_id": row["collector_id"], "state": metric[7:], "n": n})
        elif metric == "outcome:discarded":  # accepted rows ended by the user's choice
            s["discarded"] += n
            s["drops_by_reason"]["discarded"] = s["drops_by_reason"].get("discarded", 0) + n
    for row in [
        *purged,
        *Capture.objects.filter(collector_id__in=pks)
        .values("collector_id", "state")
        .annotate(n=Count("pk")),
    ]:
        s = stats[row["collector_id"]]
        state, n = row["state"], int(row["n"] or 0)
        s["accepted"] += n
        if state in PENDING_STATES:
            s["pending"] += n
        elif state == CaptureState.INGESTED:
            s["ingested"] += n
        elif state == CaptureState.FILTERED:
            s["filtered"] += n
        elif state == CaptureState.FAILED:
            s["failed"] += n
        elif state in (CaptureState.EXPIRED, CaptureState.DROPPED):
            s["dropped"] += n
            if state == CaptureState.EXPIRED:
                s["expired"] += n
    for c in collectors:
        s = stats[c.pk]
        if c.flagged_reason:
            s["last_error"], s["last_error_at"] = c.flagged_reason, c.flagged_at
    failed = (
        Capture.objects.filter(collector_id__in=pks, state=CaptureState.FAILED)
        .order_by("collector_id", F("finished_at").desc(nulls_last=True))
        .values("collector_id", "reason", "finished_at")
    )
    if connection.vendor == "postgresql":
        failed = failed.distinct("collector_id")  # the newest failure per collector only
    seen: set[int] = set()
    for row in failed.iterator():
        cid = row["collector_id"]
        if cid in seen:
            continue
        seen.add(cid)
        s = stats[cid]
        at = row["finished_at"]
        if s["last_error_at"] is None or (at is not None and at > s["last_error_at"]):
            s["last_error"], s["last_error_at"] = row["reason"], at
    return stats


def collector_stats(collector) -> dict:
    """matched, sampled_out, dropped (+drops_by_reason), accepted, filtered, ingested, failed,
    pending, expired, last_error, last_error_at for one collector.

    Pre-acceptance figures come from the flushed counters (up to ~2 s behind), the rest from the
    capture rows (exact)."""
    return collectors_stats([collector])[collector.pk]


def capture_timeline(collector, minutes: int = 60) -> list[tuple]:
    """[(minute, accepted, ingested)] for the last `minutes` minutes, oldest first, gaps as 0."""
    return capture_timelines([collector], minutes)[collector.pk]


def capture_timelines(collectors, minutes: int = 60) -> dict[int, list[tuple]]:
    """`capture_timeline` for many collectors in two grouped queries (Show All)."""
    minutes = max(1, min(int(minutes), 7 * 24 * 60))
    now = timezone.now().replace(second=0, microsecond=0)
    start = now - timedelta(minutes=minutes - 1)
    pks = [c.pk for c in collectors]
    accepted: dict[tuple, int] = {}
    ingested: dict[tuple, int] = {}
    if pks:
        for cid, m, n in (
            Capture.objects.filter(collector_id__in=pks, created_at__gte=start)
            .annotate(m=TruncMinute("created_at"))
            .values("collector_id", "m")
            .annotate(n=Count("pk"))
            .values_list("collector_id", "m", "n")
        ):
            accepted[(cid, m)] = n
        for cid, m, n in (
            Capture.objects.filter(
                collector_id__in=pks, state=CaptureState.INGESTED, finished_at__gte=start
            )
            .annotate(m=TruncMinute("finished_at"))
            .values("collector_id", "m")
            .annotate(n=Count("pk"))
            .values_list("collector_id", "m", "n")
        ):
            ingested[(cid, m)] = n
    minute_list = [start + timedelta(minutes=i) for i in range(minutes)]
    return {
        pk: [(m, accepted.get((pk, m), 0), ingested.get((pk, m), 0)) for m in minute_list]
        for pk in pks
    }


def pending_count(*, collector_id: int | None = None, limit: int | None = None) -> int:
    """Accepted-but-unfinished captures (of one collector, or all); counts at most `limit`+1."""
    qs = Capture.objects.filter(state__in=PENDING_STATES)
    if collector_id is not None:
        qs = qs.filter(collector_id=collector_id)
    if limit is not None:
        return len(qs.values_list("pk", flat=True)[: limit + 1])
    return qs.count()


def terminal_q() -> Q:
    return Q(state__in=TERMINAL_STATES)


def caller_problem(collector, caller_id: int | None) -> str:
    """Why `collector` may no longer capture this caller's prediction ("" when it still may):
    the caller rules of DESIGN.md, read from the database now (for the worker, at send time)."""
    owner_id = collector.app.owner_id
    if caller_id is None:
        return "caller_unknown"
    if collector.caller_id is None:
        model = collector.source_model_version.model
        if model.app.owner_id != owner_id:
            return "caller_not_allowed"
        return "" if caller_id == owner_id or model.capture_all_callers else "caller_not_opted_in"
    if collector.caller_id != caller_id:
        return "caller_not_allowed"
    if caller_id == owner_id:
        return ""
    granted = CaptureGrant.objects.filter(
        grantor_id=caller_id, grantee_id=owner_id, revoked_at__isnull=True
    ).exists()
    return "" if granted else "grant_revoked"


# -- operations (ops: /metrics, healthcheck) ----------------------------------------------------


def backlog_by_collector() -> list[tuple[int, int, object]]:
    """(collector pk, pending captures, oldest created_at) per collector with a backlog: one
    GROUP BY over the pending rows, found through the (state, next_attempt_at) index."""
    return list(
        Capture.objects.filter(state__in=PENDING_STATES)
        .values("collector_id")
        .annotate(n=Count("pk"), oldest=Min("created_at"))
        .order_by()
        .values_list("collector_id", "n", "oldest")
    )


def collector_labels() -> list[tuple[int, str, str, str]]:
    """(collector pk, owner user id, app id, collector id) of every collector."""
    return list(
        Collector.objects.order_by("pk").values_list(
            "pk", "app__owner__username", "app__public_id", "public_id"
        )
    )


def agent_alive(folder) -> bool:
    """Whether a capture agent holds the spool folder's lock and beat recently."""
    return spool.agent_alive(Path(folder), 10.0)


def preview_collector(collector, *, max_inputs: int = 0):
    """What `collector` (saved or a draft) would keep of recent traffic, and why (capture.preview).
    Writes nothing."""
    # capture.preview imports this module (caller_problem): imported on use to avoid the cycle.
    from .preview import preview_collector as run

    return run(collector, max_inputs=max_inputs)
