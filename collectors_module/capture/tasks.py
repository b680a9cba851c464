"""Celery tasks of the capture engine: thin wrappers around `worker` and `sweeper`.

Messages carry only capture ids (never keys or bytes). Every task is safe to run twice: the claim
is a compare-and-set, a missing row is a no-op.
"""

from __future__ import annotations

import os

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_init, worker_process_init, worker_ready
from django.conf import settings
from django.db import close_old_connections

from collectors_module.core import generations
from collectors_module.core.faults import fault_point

from . import conf, counters, retention, sweeper, worker

_LIMITS = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "ignore_result": True,
    "serializer": "json",
    "time_limit": settings.CELERY_TASK_TIME_LIMIT,
    "soft_time_limit": settings.CELERY_TASK_SOFT_TIME_LIMIT,
}


@shared_task(name="collectors.process_capture", **_LIMITS)
def process_capture(*, capture_id: str) -> str | None:
    """Claim and process one capture; returns its state (None when it no longer exists)."""
    close_old_connections()  # connections are reused across tasks (CELERY_DB_REUSE_MAX)
    try:
        state = worker.process(capture_id)
    except SoftTimeLimitExceeded:
        state = "retry"  # the lease expires and the sweeper republishes it
    finally:
        counters.flush()
        close_old_connections()
    fault_point("before_ack")
    return state


@shared_task(name="collectors.process_batch", **_LIMITS)
def process_batch(*, capture_ids: list[str]) -> dict:
    """Claim and process several captures in one transaction (throughput path)."""
    try:
        states = worker.process_batch(list(capture_ids or [])[: conf.batch_size() * 2])
    except SoftTimeLimitExceeded:
        states = {}
    finally:
        counters.flush()
    fault_point("before_ack")
    counts: dict[str, int] = {}
    for state in states.values():
        counts[state] = counts.get(state, 0) + 1
    return counts


@shared_task(
    name="collectors.sweep", acks_late=False, ignore_result=True, time_limit=60, soft_time_limit=50
)
def sweep() -> dict:
    """Republish due captures, reclaim expired leases, expire old ones (beat, every 15 s)."""
    close_old_connections()
    try:
        return sweeper.sweep()
    finally:
        counters.flush()
        close_old_connections()


@shared_task(
    name="collectors.retention", acks_late=False, ignore_result=True, time_limit=120,
    soft_time_limit=100,
)  # fmt: skip
def purge_old() -> dict:
    """Delete finished captures and counters past their retention (beat; capture.retention)."""
    close_old_connections()
    try:
        return retention.purge()
    finally:
        counters.flush()
        close_old_connections()


# -- pidfiles for the fault tests: the harness kills the main process and the pool children ------


def _pidfile_dir() -> str:
    return str(settings.COLLECTORS_WORKER_PIDFILE_DIR or "")


@worker_init.connect
def _no_background_thread(**_kwargs) -> None:
    # Tasks flush their counters themselves; see generations.forbid_thread for why.
    generations.forbid_thread()


@worker_process_init.connect
def _write_child_pidfile(**_kwargs) -> None:
    folder = _pidfile_dir()
    if folder:
        with open(os.path.join(folder, f"child-{os.getpid()}"), "w") as fh:
            fh.write(str(os.getppid()))


@worker_ready.connect
def _write_main_pidfile(**_kwargs) -> None:
    folder = _pidfile_dir()
    if folder:
        with open(os.path.join(folder, f"main-{os.getpid()}"), "w") as fh:
            fh.write("ready")
