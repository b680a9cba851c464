"""Celery tasks of the datasets app: build a version, write an export (thin over services).

Messages carry only row ids. Both tasks are safe to run twice: the claim is a compare-and-set
on the row; a redelivered message whose row is still held by a live lease retries after it.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from . import exporters, services
from .models import EXPORT_IN_PROGRESS, VERSION_IN_PROGRESS, DatasetVersion, DatasetVersionExport

_OPTIONS = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "ignore_result": True,
    "serializer": "json",
    "time_limit": settings.DATASET_EXPORT_TIME_LIMIT,
    "soft_time_limit": max(1, settings.DATASET_EXPORT_TIME_LIMIT - 10),
    "bind": True,
    "max_retries": 5,
}


def _retry_if_held(task, model, pk: int, in_progress: int) -> None:
    """A redelivered message whose row another worker still holds: look again after its lease."""
    state = services.lease_holder_until(model, pk)
    if state and state[0] == in_progress and state[1] is not None:
        wait = max(1.0, (state[1] - timezone.now()).total_seconds() + 1)
        raise task.retry(countdown=wait)


@shared_task(name="datasets.build_version", **_OPTIONS)
def build_version(self, *, pk: int) -> str:
    close_old_connections()
    try:
        outcome = services.version_build(pk)
        if outcome == "skipped":
            _retry_if_held(self, DatasetVersion, pk, VERSION_IN_PROGRESS)
        return outcome
    finally:
        close_old_connections()


@shared_task(name="datasets.export", **_OPTIONS)
def export(self, *, pk: int) -> str:
    close_old_connections()
    try:
        outcome = exporters.run_export(pk)
        if outcome == "skipped":
            _retry_if_held(self, DatasetVersionExport, pk, EXPORT_IN_PROGRESS)
        return outcome
    finally:
        close_old_connections()


@shared_task(name="datasets.sweep", acks_late=False, ignore_result=True, time_limit=60)
def sweep() -> dict:
    """Re-send builds and exports nobody is working on (beat, DATASET_SWEEP_SECONDS)."""
    close_old_connections()
    try:
        return services.datasets_sweep()
    finally:
        close_old_connections()
