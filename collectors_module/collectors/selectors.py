"""Tenant-scoped reads of collectors (their captures, counters and timelines are read through
`collectors_module.capture.selectors`)."""

from __future__ import annotations

from collectors_module.core.errors import not_found

from .models import Collector


def collectors_of_app(app):
    """The collectors of `app`, newest first (the caller already may see `app`)."""
    return (
        Collector.objects.filter(app=app)
        .select_related(
            "app",
            "app__owner",
            "caller",
            "post_inputs_key",
            "pre_queue_workflow",
            "post_queue_workflow",
        )
        .order_by("-created_at", "-pk")
    )


def collector_for_app(app, collector_id: str) -> Collector:
    """One collector of `app` by public id; 11101 when missing (or in another app)."""
    collector = collectors_of_app(app).filter(public_id=collector_id).first()
    if collector is None:
        raise not_found("Collector", collector_id)
    return collector


def collector_limits(collector) -> dict:
    return {
        "max_per_minute": collector.max_per_minute,
        "max_per_hour": collector.max_per_hour,
        "max_per_day": collector.max_per_day,
        "max_pending": collector.max_pending,
    }


def collectors_using(versions, owner) -> list[tuple[str, str]]:
    """(model id, what) for the collectors whose source is one of `versions`: the owner's by
    name, other users' only by user id (for DeleteModels' refusal; inference asks through its
    hooks)."""
    out = []
    collectors = (
        Collector.objects.filter(source_model_version__in=versions)
        .select_related("app__owner")
        .order_by("app__owner__username", "public_id")[:200]
    )
    for c in collectors:
        if c.app.owner_id == owner.pk:
            out.append((c.model_id, f"collector '{c.public_id}' (app '{c.app.public_id}')"))
        else:
            out.append((c.model_id, f"a collector of user '{c.app.owner.username}'"))
    return out
