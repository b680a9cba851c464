"""System checks for the delivery settings (reliability bar §1.3, §3.1)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register

from . import conf


def check_delivery_settings(app_configs=None, **kwargs) -> list[Error]:
    """Refuse settings that lose or duplicate captures: a visibility timeout that a running task
    (hard limit + lease) can outlive, and acks_late without reject_on_worker_lost."""
    errors: list[Error] = []
    broker = str(getattr(settings, "CELERY_BROKER_URL", ""))
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}
    time_limit = float(getattr(settings, "CELERY_TASK_TIME_LIMIT", 0) or 0)
    lease = conf.lease_seconds()
    if broker.startswith(("redis://", "rediss://", "sentinel://")):
        visibility = float(options.get("visibility_timeout", 3600))
        if visibility <= time_limit + lease:
            errors.append(
                Error(
                    f"Redis visibility_timeout ({visibility:g} s) must exceed the task time limit "
                    f"plus the capture lease ({time_limit:g} + {lease:g} s): otherwise running "
                    "captures are delivered again while still in progress.",
                    hint="Raise CELERY_VISIBILITY_TIMEOUT or lower CELERY_TASK_TIME_LIMIT / COLLECTORS_LEASE_SECONDS.",
                    id="collectors.E001",
                )
            )
    if lease <= time_limit:
        errors.append(
            Error(
                f"COLLECTORS_LEASE_SECONDS ({lease:g}) must exceed CELERY_TASK_TIME_LIMIT ({time_limit:g}): "
                "a lease that ends while the task may still run lets a second worker take the capture.",
                id="collectors.E002",
            )
        )
    if getattr(settings, "CELERY_TASK_ACKS_LATE", False) and not getattr(
        settings, "CELERY_TASK_REJECT_ON_WORKER_LOST", False
    ):
        errors.append(
            Error(
                "CELERY_TASK_ACKS_LATE is on but CELERY_TASK_REJECT_ON_WORKER_LOST is off: a killed "
                "worker child's message would be acknowledged and lost.",
                hint="Set CELERY_TASK_REJECT_ON_WORKER_LOST = True.",
                id="collectors.E003",
            )
        )
    return errors


def register_checks() -> None:
    register(check_delivery_settings, "collectors")
