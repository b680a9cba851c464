"""Reading operator parameters: plain JSON values in, checked Python values out.

A bad value raises `ApiError(MODEL_INVALID_ARGUMENT, ..., field=<output_info path>)`, which the
workflow service turns into WORKFLOW_INVALID_GRAPH on the node that carries it.
"""

from __future__ import annotations

import math
from typing import Any

from collectors_module.core.errors import SC, ApiError

PARAMS = "output_info.params."


def invalid(name: str, details: str) -> ApiError:
    path = name if name.startswith("output_info.") else PARAMS + name
    return ApiError(SC.MODEL_INVALID_ARGUMENT, details, field=path)


def number(
    params: dict, name: str, default: float | None, lo: float = 0.0, hi: float = 1.0
) -> float:
    raw = params.get(name, default)
    if raw is None or raw == "":
        if default is None:
            raise invalid(name, f"{name} is required (a number from {lo:g} to {hi:g})")
        raw = default
    if isinstance(raw, bool):
        raise invalid(name, f"{name} must be a number from {lo:g} to {hi:g}, not a boolean")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise invalid(
            name, f"{name} must be a number from {lo:g} to {hi:g}, got {str(raw)[:40]!r}"
        ) from None
    if math.isnan(value) or not lo <= value <= hi:
        raise invalid(name, f"{name} must be from {lo:g} to {hi:g}, got {value:g}")
    return value


def boolean(params: dict, name: str, default: bool) -> bool:
    raw = params.get(name, default)
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int | float) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false", "1", "0", "yes", "no", ""):
        return raw.strip().lower() in ("true", "1", "yes")
    raise invalid(name, f"{name} must be true or false, got {str(raw)[:40]!r}")


def string(params: dict, name: str, default: str = "", max_len: int = 256) -> str:
    raw = params.get(name, default)
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise invalid(name, f"{name} must be a string")
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)  # JSON numbers arrive as floats through Struct
    text = str(raw)
    if len(text) > max_len:
        raise invalid(name, f"{name} must be at most {max_len} characters")
    return text


def concept_key(concept: Any) -> tuple[str, str]:
    """(id, name) of a concept given as a protobuf Concept or a dict."""
    if isinstance(concept, dict):
        return str(concept.get("id") or ""), str(concept.get("name") or "")
    return concept.id, concept.name
