"""Secrets kept at rest (a remote model's per-model API key): authenticated encryption with
Fernet (AES-128-CBC + HMAC-SHA256, `cryptography`), with key rotation.

Keys come from settings.REMOTE_MODEL_SECRET_KEYS (Fernet keys, newest first): the first one
seals, every one of them unseals, so an operator rotates by putting a new key in front, running
`manage.py reseal_secrets` (re-seals every stored secret with the first key), then dropping the
old key. Without keys configured, one key is derived from SECRET_KEY (fine for a single
installation; rotating SECRET_KEY then needs the old one listed in REMOTE_MODEL_SECRET_KEYS).
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

PREFIX = "fernet:"


class SealedError(Exception):
    """A sealed value that no configured key opens (wrong keys, or tampered with)."""


def _derived_key() -> bytes:
    digest = hashlib.sha256(b"collectors-sealed-v1:" + settings.SECRET_KEY.encode()).digest()
    return base64.urlsafe_b64encode(digest)


def _box() -> MultiFernet:
    keys = [k for k in (settings.REMOTE_MODEL_SECRET_KEYS or []) if k]
    if not keys:
        keys = [_derived_key()]
    return MultiFernet([Fernet(k) for k in keys])


def seal(plaintext: str) -> str:
    return PREFIX + _box().encrypt(plaintext.encode("utf-8")).decode("ascii")


def is_sealed(value) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def unseal(token: str) -> str:
    if not is_sealed(token):
        raise SealedError("not a sealed value")
    try:
        return _box().decrypt(token[len(PREFIX) :].encode("ascii")).decode("utf-8")
    except (InvalidToken, ValueError) as exc:
        raise SealedError("no configured key opens this value") from exc


def reseal(token: str) -> str:
    """The same secret sealed with the first (newest) key."""
    try:
        return PREFIX + _box().rotate(token[len(PREFIX) :].encode("ascii")).decode("ascii")
    except (InvalidToken, ValueError) as exc:
        raise SealedError("no configured key opens this value") from exc
