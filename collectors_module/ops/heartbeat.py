"""The worker heartbeat: a Celery bootstep that writes a short-lived Redis key.

Every `HEALTH_HEARTBEAT_SECONDS` the worker's main process, from its own event loop's timer,
sets `collectors:heartbeat:worker:<hostname>` in `REDIS_URL` with a time to live of three
intervals. A worker whose loop is stuck, whose process died or whose host is cut off stops
refreshing it, and the key expires. Readiness (`/readyz`, `manage.py healthcheck worker`) reads
it. Importable before Django is set up (celery.py adds the step when the app is created).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time

import redis
from celery import bootsteps
from celery.signals import worker_process_shutdown
from django.conf import settings
from prometheus_client import multiprocess

log = logging.getLogger("collectors.heartbeat")

PREFIX = "collectors:heartbeat:worker:"


def _client() -> redis.Redis:
    t = float(settings.HEALTH_CHECK_TIMEOUT_SECONDS)
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=t, socket_connect_timeout=t)


def beat(hostname: str, client: redis.Redis | None = None) -> bool:
    """Write this worker's heartbeat now; False when Redis did not take it."""
    interval = float(settings.HEALTH_HEARTBEAT_SECONDS)
    value = json.dumps({"host": socket.gethostname(), "name": hostname, "pid": os.getpid(),
                        "at": time.time()})  # fmt: skip
    try:
        (client or _client()).set(PREFIX + hostname, value, ex=max(1, int(interval * 3)))
        return True
    except redis.RedisError as exc:
        log.warning("worker heartbeat not written: %s", type(exc).__name__)
        return False


def fresh_heartbeats(max_age: float | None = None) -> list[dict]:
    """The heartbeats written in the last `max_age` s (default three intervals)."""
    max_age = float(max_age if max_age is not None else settings.HEALTH_HEARTBEAT_SECONDS * 3)
    client = _client()
    try:
        keys = list(client.scan_iter(match=PREFIX + "*", count=100))[:1000]
        values = client.mget(keys) if keys else []
    finally:
        client.close()
    now = time.time()
    out = []
    for raw in values:
        try:
            beat_ = json.loads(raw)
        except (TypeError, ValueError):
            continue
        if now - float(beat_.get("at", 0)) <= max_age:
            out.append(beat_)
    return out


class HeartbeatStep(bootsteps.StartStopStep):
    """Celery worker bootstep: the heartbeat timer (the documented way to add a periodic job to
    a worker's own loop)."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.tref = None
        self.client = None

    def start(self, worker):
        self.client = _client()
        name = worker.hostname
        beat(name, self.client)
        self.tref = worker.timer.call_repeatedly(
            float(settings.HEALTH_HEARTBEAT_SECONDS), beat, (name, self.client), priority=10
        )

    def stop(self, worker):
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None
        if self.client is not None:
            with contextlib.suppress(redis.RedisError):
                self.client.delete(PREFIX + worker.hostname)
            self.client.close()


@worker_process_shutdown.connect
def _mark_child_dead(pid=None, **_kwargs) -> None:
    """A prefork child ends: its live gauges leave the multiprocess files (counters stay)."""
    if settings.PROMETHEUS_MULTIPROC_DIR:
        multiprocess.mark_process_dead(pid or os.getpid())
