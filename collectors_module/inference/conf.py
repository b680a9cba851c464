"""Tunables of the inference app, read from `django.conf.settings` (defaults in settings.py)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings


def max_predict_inputs() -> int:
    """Inputs per PostModelOutputs request (Clarifai's limit is 128)."""
    return int(settings.MAX_PREDICT_INPUTS)


def fetch_workers() -> int:
    """Threads that fetch image URLs of one request in parallel."""
    return int(settings.PREDICT_FETCH_WORKERS)


def fetch_deadline_seconds() -> float:
    """One deadline for every URL fetched by one request (each fetch also has its own 15 s)."""
    return float(settings.PREDICT_FETCH_DEADLINE_SECONDS)


def max_text_bytes() -> int:
    """Largest text input (text.raw or fetched text.url), in bytes."""
    return int(settings.MAX_TEXT_BYTES)


def ocr_max_side() -> int:
    """The OCR detector resizes an image so its longer side is at most this many pixels."""
    return int(settings.OCR_MAX_SIDE)


# --- remote models ----------------------------------------------------------------------------


def remote_model_allowed_endpoints() -> list[str]:
    """URL prefixes a remote model version may point at. Empty: no remote models."""
    value = settings.REMOTE_MODEL_ALLOWED_ENDPOINTS
    if isinstance(value, str):
        value = value.split(",")
    return [str(item).strip() for item in value or [] if str(item).strip()]


def remote_model_key(name: str) -> str:
    """The operator-held credential named `name` (REMOTE_MODEL_KEY_<NAME>), or ''."""
    return str((settings.REMOTE_MODEL_KEYS or {}).get(name, ""))


def remote_model_credential_endpoints() -> dict[str, str]:
    """Operator credential name -> the endpoint URL prefix it is bound to."""
    value = settings.REMOTE_MODEL_CREDENTIAL_ENDPOINTS or {}
    return {str(k).strip(): str(v).strip() for k, v in value.items() if str(k).strip()}


def remote_model_timeout() -> float:
    """Default total seconds for one remote call (a version's config may lower or raise it up to
    REMOTE_MODEL_MAX_TIMEOUT)."""
    return float(settings.REMOTE_MODEL_TIMEOUT)


def remote_model_max_timeout() -> float:
    return float(settings.REMOTE_MODEL_MAX_TIMEOUT)


def remote_model_connect_timeout() -> float:
    return float(settings.REMOTE_MODEL_CONNECT_TIMEOUT)


def remote_model_retries() -> int:
    """Extra attempts after a 5xx reply or a refused/reset connection (never after a timeout)."""
    return int(settings.REMOTE_MODEL_RETRIES)


def remote_model_retry_backoff() -> float:
    """Seconds before the first retry; doubled for each further one."""
    return float(settings.REMOTE_MODEL_RETRY_BACKOFF)


def remote_model_max_reply_bytes() -> int:
    return int(settings.REMOTE_MODEL_MAX_REPLY_BYTES)


def remote_model_concurrency() -> int:
    """Parallel requests one predict call makes to a remote endpoint."""
    return int(settings.REMOTE_MODEL_CONCURRENCY)


# --- built-in image models (general-image-recognition and co.) ----------------------------------


def model_cache_dir():
    """Where built model graphs are cached (settings.MODEL_CACHE_DIR, under the data folder)."""
    return Path(settings.MODEL_CACHE_DIR)


def image_model_threads() -> int:
    """onnxruntime intra-op threads per image-model session (0: onnxruntime's default)."""
    return int(settings.IMAGE_MODEL_THREADS)
