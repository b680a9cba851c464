"""Tunables of the inputs app, read from `django.conf.settings` (defaults in settings.py)."""

from __future__ import annotations

from django.conf import settings


def max_inputs_per_request() -> int:
    """PostInputs batch limit (Clarifai documents 128)."""
    return int(settings.INPUTS_MAX_PER_REQUEST)


def max_text_bytes() -> int:
    """Largest `data.text.raw` stored for one input (UTF-8 bytes)."""
    return int(settings.INPUT_MAX_TEXT_BYTES)


def max_data_bytes() -> int:
    """Largest JSON of the rest of `data` (concepts, regions, metadata...) for one input."""
    return int(settings.INPUT_MAX_DATA_BYTES)


def public_base_url() -> str:
    """Scheme and host put in front of hosted media URLs ('' gives site-relative URLs)."""
    return (settings.COLLECTORS_PUBLIC_URL or "").rstrip("/")


def max_image_bytes() -> int:
    """Largest image read back from blob storage (the same cap as an uploaded image)."""
    return int(settings.MAX_IMAGE_BYTES)
