"""Tunables of the inputs app (settings override the defaults; environment overrides both)."""

from __future__ import annotations

import os

from django.conf import settings


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw not in (None, ""):
        return int(raw)
    return int(getattr(settings, name, default))


def max_inputs_per_request() -> int:
    """PostInputs batch limit (Clarifai documents 128)."""
    return _int("INPUTS_MAX_PER_REQUEST", 128)


def max_text_bytes() -> int:
    """Largest `data.text.raw` stored for one input (UTF-8 bytes)."""
    return _int("INPUT_MAX_TEXT_BYTES", 1_000_000)


def max_data_bytes() -> int:
    """Largest JSON of the rest of `data` (concepts, regions, metadata...) for one input."""
    return _int("INPUT_MAX_DATA_BYTES", 1_000_000)


def public_base_url() -> str:
    """Scheme and host put in front of hosted media URLs ('' gives site-relative URLs)."""
    value = os.environ.get("COLLECTORS_PUBLIC_URL") or getattr(
        settings, "COLLECTORS_PUBLIC_URL", ""
    )
    return (value or "").rstrip("/")
