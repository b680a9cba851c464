"""Class-balanced quotas: the Redis side of the `class-quota` operator.

For each concept an input counts under (the operator says which), one Redis SET per
(collector, node, concept, window) holds the ids of the captures kept in that window; a Lua
script checks and adds atomically, so every web process and worker shares the count, and a
capture already counted (a retried worker attempt, the same prediction evaluated again) is kept
without being counted twice. The input is kept while one of its concepts has room and is added
to those with room; when all are full it is dropped as `class_quota:<concept>`.

At admission the Redis call uses the rate limiter's short timeout and a circuit breaker; if Redis
is unavailable the capture is dropped (`class_quota_unavailable`, fail closed like the rate
limits). In the worker an unavailable Redis is a retry (`QuotaUnavailable`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time

from . import conf, near_duplicates
from .limits import limiter_client

log = logging.getLogger("collectors.quotas")

UNAVAILABLE = "class_quota_unavailable"

_LUA = """
local member, limit, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
for _, key in ipairs(KEYS) do
  if redis.call('SISMEMBER', key, member) == 1 then return 0 end
end
local first_full, added = 0, 0
for i, key in ipairs(KEYS) do
  if redis.call('SCARD', key) < limit then
    redis.call('SADD', key, member)
    redis.call('EXPIRE', key, ttl)
    added = added + 1
  elseif first_full == 0 then
    first_full = i
  end
end
if added > 0 then return 0 end
return first_full
"""

_PEEK = """
local member, limit = ARGV[1], tonumber(ARGV[2])
for _, key in ipairs(KEYS) do
  if redis.call('SISMEMBER', key, member) == 1 then return 0 end
end
for i, key in ipairs(KEYS) do
  if redis.call('SCARD', key) < limit then return 0 end
end
return 1
"""


class QuotaUnavailable(Exception):
    """Redis could not be asked (the worker retries the capture later)."""


class _Redis:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._client = None
        self._scripts = None
        self._url = None
        self.open_until = 0.0

    def scripts(self):
        url = conf.limiter_redis_url()
        with self._lock:
            if self._scripts is None or url != self._url:
                self._client = limiter_client(url)
                self._scripts = (
                    self._client.register_script(_LUA),
                    self._client.register_script(_PEEK),
                )
                self._url = url
            return self._scripts

    def reset(self) -> None:
        with self._lock:
            if self._client is not None:
                with contextlib.suppress(Exception):
                    self._client.close()
            self._client = self._scripts = self._url = None
            self.open_until = 0.0


_redis = _Redis()


def reset() -> None:
    """Forget the client and close the breaker (tests, settings changes)."""
    _redis.reset()


def _key(collector_pk: int, node_id: str, concept: str, window: str, seconds: int) -> str:
    bucket = int(time.time() // seconds)
    # Concept ids are user data: hashed, so a key has a bounded length and no odd characters.
    digest = hashlib.blake2b(concept.encode(), digest_size=8).hexdigest()
    return f"collectors:cq:{collector_pk}:{node_id}:{window}:{bucket}:{digest}"


class Gate:
    """The executor's quota gate for one capture of one collector (see workflows.executor).

    `strict` (the worker): Redis failures raise QuotaUnavailable; otherwise (admission) they drop
    the capture as `class_quota_unavailable`. `dry_run` (the preview) reads the counts and
    counts nothing. After a drop, `reason` is `class_quota:<concept>` (or the unavailable one)."""

    def __init__(
        self, collector_pk: int, member: str, *, strict: bool = False, dry_run=False, app=None
    ):
        self.app = app  # the destination app, for near-duplicate nodes (worker only)
        self.collector_pk = collector_pk
        self.member = str(member)[:80]
        self.strict = strict
        self.dry_run = dry_run
        self.reason = ""

    def duplicate(self, node_id: str, config, data) -> str:
        """A near-duplicate node: the reason when `data` duplicates an input of the app."""
        if self.app is None:
            return ""  # admission: never looked up on the predict path (such workflows defer)
        match = near_duplicates.lookup(self.app, data, None, config.max_distance)
        self.reason = near_duplicates.reason(match) if match else ""
        return self.reason

    def __call__(self, node_id: str, config, concepts: list) -> str:
        if not self.strict and time.monotonic() < _redis.open_until:
            self.reason = UNAVAILABLE
            return concepts[0]
        keys = [
            _key(self.collector_pk, node_id, c, config.window, config.window_seconds)
            for c in concepts
        ]
        try:
            script, peek = _redis.scripts()
            if self.dry_run:
                verdict = int(peek(keys=keys, args=[self.member, config.max_per_window]))
            else:
                ttl = config.window_seconds + 60
                verdict = int(script(keys=keys, args=[self.member, config.max_per_window, ttl]))
        except Exception as exc:  # RedisError, OSError, timeouts
            if self.strict:
                raise QuotaUnavailable(
                    f"class quota: Redis unavailable ({type(exc).__name__})"
                ) from exc
            _redis.open_until = time.monotonic() + conf.limiter_breaker_seconds()
            log.warning("class quota: Redis unavailable (%s)", type(exc).__name__)
            self.reason = UNAVAILABLE
            return concepts[0]
        if verdict == 0:
            return ""
        full = concepts[verdict - 1]
        self.reason = f"class_quota:{full}"
        return full


def live_count(collector_pk: int, node_id: str, concept: str, config) -> int:
    """How many captures the live quota holds now for this concept (0 if Redis cannot say)."""
    key = _key(collector_pk, node_id, concept, config.window, config.window_seconds)
    try:
        _redis.scripts()
        return int(_redis._client.scard(key))
    except Exception:
        return 0
