"""Tenant-scoped reads of inputs (the caller has already resolved the app it may use)."""

from __future__ import annotations

from django.db.models import Count

from collectors_module.core.errors import not_found

from .models import Input


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
