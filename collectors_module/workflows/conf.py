"""Tunables of the workflows app (settings override the defaults, env overrides settings)."""

from __future__ import annotations

import os

from django.conf import settings


def _number(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is not None:
        return float(value)
    return float(getattr(settings, name, default))


def max_nodes() -> int:
    """Nodes in one workflow (Clarifai's portal allows 20)."""
    return int(_number("WORKFLOW_MAX_NODES", 20))


def max_result_inputs() -> int:
    """Inputs per PostWorkflowResults request (Clarifai's limit is 32)."""
    return int(_number("WORKFLOW_MAX_RESULT_INPUTS", 32))


def plan_ttl_seconds() -> float:
    """How long a compiled workflow plan is reused before it is rebuilt from the database, so a
    concept relation changed in another process reaches the mappers within this time."""
    return _number("WORKFLOW_PLAN_TTL_SECONDS", 10.0)
