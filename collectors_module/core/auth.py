"""`Authorization: Key <secret>` parsing and key resolution (pure parsing + one indexed lookup)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from django.utils import timezone

from .errors import SC, ApiError

MAX_AUTH_HEADER = 512
_LAST_USED_RESOLUTION = timedelta(seconds=60)


def digest_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def parse_authorization(value: str | None) -> str:
    """Return the secret from 'Key <secret>'; raise CONN_KEY_INVALID for anything else."""
    if not value:
        raise ApiError(SC.CONN_KEY_INVALID, "Missing 'Authorization: Key <your key>' header")
    if len(value) > MAX_AUTH_HEADER:
        raise ApiError(SC.CONN_KEY_INVALID, "Authorization header is too long")
    scheme, _, secret = value.partition(" ")
    if scheme.lower() != "key" or not secret or " " in secret.strip() or "\x00" in secret:
        raise ApiError(SC.CONN_KEY_INVALID, "Authorization header must be 'Key <your key>'")
    return secret.strip()


def authenticate(value: str | None):
    """Resolve an Authorization header value to a usable Key (with owner and app loaded)."""
    from collectors_module.accounts.models import Key

    secret = parse_authorization(value)
    key = (
        Key.objects.select_related("owner", "app", "app__owner")
        .filter(digest=digest_secret(secret))
        .first()
    )
    if key is None or not key.is_usable or not key.owner.is_active:
        raise ApiError(SC.CONN_KEY_INVALID)
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > _LAST_USED_RESOLUTION:
        # Coarse on purpose: one write per key per minute, not one per request.
        Key.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key
