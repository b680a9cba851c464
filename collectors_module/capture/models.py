"""The capture engine's tables: the outbox with its decision log, and per-minute counters.

Both tables kept the names they had when they lived in the `collectors` app.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class CaptureState(models.TextChoices):
    ACCEPTED = "accepted"
    PROCESSING = "processing"
    RETRY = "retry"
    INGESTED = "ingested"
    FILTERED = "filtered"
    FAILED = "failed"
    EXPIRED = "expired"
    DROPPED = "dropped"  # dropped by a rule after acceptance (e.g. discarded by the user)


TERMINAL_STATES = (
    CaptureState.INGESTED,
    CaptureState.FILTERED,
    CaptureState.FAILED,
    CaptureState.EXPIRED,
    CaptureState.DROPPED,
)
PENDING_STATES = (CaptureState.ACCEPTED, CaptureState.PROCESSING, CaptureState.RETRY)


class Capture(models.Model):
    """One accepted capture: the outbox row and its decision log. Ends in one terminal state."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    collector = models.ForeignKey(
        "collectors.Collector", on_delete=models.CASCADE, related_name="captures"
    )
    state = models.CharField(
        max_length=16, choices=CaptureState.choices, default=CaptureState.ACCEPTED
    )
    reason = models.CharField(max_length=512, blank=True)
    status_code = models.IntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    caller = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    request_id = models.CharField(max_length=64)
    input_index = models.PositiveIntegerField(default=0)
    # The original input: `Data` JSON without bytes, plus the bytes themselves (purged when done).
    input_data = models.JSONField(default=dict)
    payload = models.BinaryField(null=True, blank=True)
    outputs = models.JSONField(default=list, blank=True)  # the source model's outputs
    destination_input_id = models.CharField(max_length=128, blank=True)
    filtered_by = models.CharField(max_length=128, blank=True)
    # True when the collector's pre-queue workflow needs real models: admission could not
    # evaluate it inline, so the worker runs it before the post-queue workflow.
    pre_queue_pending = models.BooleanField(default=False)

    class Meta:
        db_table = "collectors_capture"
        constraints = [
            models.UniqueConstraint(
                fields=["collector", "request_id", "input_index"],
                name="one_capture_per_request_input",
            )
        ]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"], name="collectors__state_a8e1c3_idx"),
            models.Index(
                fields=["collector", "-created_at"], name="collectors__collect_11e38a_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"capture {self.pk} ({self.state})"


class CollectorCounter(models.Model):
    """Per-collector, per-minute counts by metric (matched, sampled_out, ingested, ...)."""

    collector = models.ForeignKey(
        "collectors.Collector", on_delete=models.CASCADE, related_name="counters"
    )
    metric = models.CharField(max_length=48)
    bucket = models.DateTimeField()  # start of the minute, UTC
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        db_table = "collectors_collectorcounter"
        constraints = [
            models.UniqueConstraint(
                fields=["collector", "metric", "bucket"], name="one_counter_per_bucket"
            )
        ]

    def __str__(self) -> str:
        return f"{self.collector_id} {self.metric} {self.bucket:%Y-%m-%d %H:%M}: {self.count}"
