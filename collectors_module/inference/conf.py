"""Tunables of the inference app (settings override the defaults, env overrides settings)."""

from __future__ import annotations

import os

from django.conf import settings


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is not None:
        return int(value)
    return int(getattr(settings, name, default))


def max_predict_inputs() -> int:
    """Inputs per PostModelOutputs request (Clarifai's limit is 128)."""
    return _int("MAX_PREDICT_INPUTS", 128)


def fetch_workers() -> int:
    """Threads that fetch image URLs of one request in parallel."""
    return _int("PREDICT_FETCH_WORKERS", 8)


def max_text_bytes() -> int:
    """Largest text input (text.raw or fetched text.url), in bytes."""
    return _int("MAX_TEXT_BYTES", 1_000_000)


def ocr_max_side() -> int:
    """The OCR detector resizes an image so its longer side is at most this many pixels."""
    return _int("OCR_MAX_SIDE", 960)
