"""`Authorization: Key <secret>` parsing and secret digests (pure; key resolution with its cache
lives in `accounts.auth`)."""

from __future__ import annotations

import hashlib

from .errors import SC, ApiError

MAX_AUTH_HEADER = 512


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
