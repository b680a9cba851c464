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


# --- remote models (safety helper) -----------------------------------------------------------


def _float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is not None:
        return float(value)
    return float(getattr(settings, name, default))


def remote_model_allowed_endpoints() -> list[str]:
    """URL prefixes a remote model version may point at (operator setting or env
    REMOTE_MODEL_ALLOWED_ENDPOINTS, comma separated). Empty: no remote models."""
    value = os.environ.get("REMOTE_MODEL_ALLOWED_ENDPOINTS")
    if value is None:
        value = getattr(settings, "REMOTE_MODEL_ALLOWED_ENDPOINTS", "")
    if isinstance(value, str):
        value = value.split(",")
    return [str(item).strip() for item in value or [] if str(item).strip()]


def remote_model_timeout() -> float:
    """Default total seconds for one remote call (a version's config may lower or raise it up to
    REMOTE_MODEL_MAX_TIMEOUT)."""
    return _float("REMOTE_MODEL_TIMEOUT", 30.0)


def remote_model_max_timeout() -> float:
    return _float("REMOTE_MODEL_MAX_TIMEOUT", 120.0)


def remote_model_connect_timeout() -> float:
    return _float("REMOTE_MODEL_CONNECT_TIMEOUT", 3.0)


def remote_model_retries() -> int:
    """Extra attempts after a 5xx reply or a refused/reset connection (never after a timeout)."""
    return _int("REMOTE_MODEL_RETRIES", 2)


def remote_model_retry_backoff() -> float:
    """Seconds before the first retry; doubled for each further one."""
    return _float("REMOTE_MODEL_RETRY_BACKOFF", 0.2)


def remote_model_max_reply_bytes() -> int:
    return _int("REMOTE_MODEL_MAX_REPLY_BYTES", 4 * 2**20)


def remote_model_concurrency() -> int:
    """Parallel requests one predict call makes to a remote endpoint."""
    return _int("REMOTE_MODEL_CONCURRENCY", 4)


# --- built-in image models (general-image-recognition and co.) ----------------------------------


def model_cache_dir():
    """Where built model graphs are cached (settings.MODEL_CACHE_DIR, under the data folder)."""
    from pathlib import Path

    return Path(settings.MODEL_CACHE_DIR)


def image_model_threads() -> int:
    """onnxruntime intra-op threads per image-model session (0: onnxruntime's default)."""
    return int(settings.IMAGE_MODEL_THREADS)
