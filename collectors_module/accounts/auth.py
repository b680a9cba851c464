"""Resolving `Authorization: Key <secret>` to a usable key, from a per-process cache.

A hit costs a SHA-256 and a dict lookup: no SQL is compiled or sent. The cache is cleared when
the keys, users or apps tables change in any process (`core.generations`: seen within
CACHE_CHECK_SECONDS, at once in the process that made the change), so a revoked key stops
working within a second everywhere; an expiry is checked on every use. `last_used_at` is kept
coarse (at most one write per key per minute), and in servers that write is made by the
background thread, never by the request.
"""

from __future__ import annotations

import threading
from datetime import timedelta

from django.utils import timezone

from collectors_module.applications.models import App
from collectors_module.core import generations
from collectors_module.core.auth import digest_secret, parse_authorization
from collectors_module.core.errors import SC, ApiError

from .models import Key, User

LAST_USED_RESOLUTION = timedelta(seconds=60)

_keys = generations.SyncedCache("keys", generations.tables_of(Key, User, App))
_used: dict[int, object] = {}  # key pk -> last use not written yet
_used_lock = threading.Lock()


def _load(digest: str) -> Key | None:
    return Key.objects.select_related("owner", "app", "app__owner").filter(digest=digest).first()


def authenticate(value: str | None) -> Key:
    """The usable key of an Authorization header value (owner and app loaded); raises
    CONN_KEY_INVALID otherwise. The returned key is shared: treat it as read-only."""
    secret = parse_authorization(value)
    digest = digest_secret(secret)
    # Unknown secrets are not cached: junk keys cannot evict good ones.
    key = _keys.get(digest, lambda: _load(digest), store_none=False)
    if key is None or not key.is_usable or not key.owner.is_active:
        raise ApiError(SC.CONN_KEY_INVALID)
    _note_used(key)
    return key


def _note_used(key: Key) -> None:
    now = timezone.now()
    last = key.last_used_at
    if last is not None and now - last <= LAST_USED_RESOLUTION:
        return
    key.last_used_at = now  # the shared copy: the next minute of uses writes nothing
    if generations.threads_allowed():
        with _used_lock:
            _used[key.pk] = now
        generations.ensure_fresh()
    else:
        Key.objects.filter(pk=key.pk).update(last_used_at=now)


def flush_last_used() -> None:
    """Write the pending last-used times (the background thread's chore)."""
    with _used_lock:
        pending = dict(_used)
        _used.clear()
    for pk, when in pending.items():
        Key.objects.filter(pk=pk).update(last_used_at=when)


def install() -> None:
    generations.add_chore(flush_last_used)


def cached_keys() -> int:
    return len(_keys)
