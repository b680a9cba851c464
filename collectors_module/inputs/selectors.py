"""Tenant-scoped reads of inputs (the caller has already resolved the app it may use)."""

from __future__ import annotations

from django.db.models import Count, Q

from collectors_module.core.errors import not_found

from .models import Annotation, Input


def inputs_of_app(app):
    """The app's inputs, newest first (ties broken by insertion order, newest first)."""
    return Input.objects.filter(app=app).select_related("app").order_by("-created_at", "-id")


def input_for_app(app, input_id: str) -> Input:
    """One input of the app by public id; 11101 when it is not in THIS app."""
    row = inputs_of_app(app).filter(public_id=input_id).first() if input_id else None
    if row is None:
        raise not_found("Input", input_id[:128])
    return row


def input_count(app) -> dict[int, int]:
    """Number of the app's inputs per status code (e.g. {30000: 12})."""
    rows = Input.objects.filter(app=app).values("status_code").annotate(n=Count("id"))
    return {r["status_code"]: r["n"] for r in rows}


def annotations_of_app(
    app,
    *,
    ids=(),
    input_ids=(),
    user_ids=(),
    model_version_ids=(),
    status_codes=(),
):
    """The app's annotations, oldest first, optionally filtered (each filter: any of the values).
    `user_ids` matches the annotator; a model's annotation counts as the app owner's."""
    qs = Annotation.objects.filter(app=app).select_related("input", "user", "app__owner")
    if ids:
        qs = qs.filter(public_id__in=list(ids))
    if input_ids:
        qs = qs.filter(input__public_id__in=list(input_ids))
    if model_version_ids:
        qs = qs.filter(model_version_id__in=list(model_version_ids))
    if status_codes:
        qs = qs.filter(status_code__in=list(status_codes))
    if user_ids:
        users = Q(user__username__in=list(user_ids))
        if app.owner.username in user_ids:
            users |= Q(user__isnull=True)
        qs = qs.filter(users)
    return qs.order_by("created_at", "pk")


def annotation_for_app(app, annotation_id: str, *, input_id: str = "") -> Annotation:
    """One annotation of the app (of that input, when given); 11101 otherwise."""
    row = (
        annotations_of_app(
            app, ids=[annotation_id], input_ids=[input_id] if input_id else ()
        ).first()
        if annotation_id
        else None
    )
    if row is None:
        raise not_found("Annotation", annotation_id[:128])
    return row


def annotations_of_inputs(inputs) -> dict[int, list[Annotation]]:
    """Annotations of these input rows, by input pk (one query; for pages)."""
    out: dict[int, list[Annotation]] = {}
    rows = Annotation.objects.filter(input__in=list(inputs)).select_related("user")
    for row in rows.order_by("created_at", "pk"):
        out.setdefault(row.input_id, []).append(row)
    return out
