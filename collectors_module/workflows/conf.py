"""Tunables of the workflows app, read from `django.conf.settings` (defaults in settings.py)."""

from __future__ import annotations

from django.conf import settings


def max_nodes() -> int:
    """Nodes in one workflow (Clarifai's portal allows 20)."""
    return int(settings.WORKFLOW_MAX_NODES)


def max_result_inputs() -> int:
    """Inputs per PostWorkflowResults request (Clarifai's limit is 32)."""
    return int(settings.WORKFLOW_MAX_RESULT_INPUTS)


def plan_ttl_seconds() -> float:
    """How long a compiled workflow plan is reused before it is rebuilt from the database, so a
    concept relation changed in another process reaches the mappers within this time."""
    return float(settings.WORKFLOW_PLAN_TTL_SECONDS)
