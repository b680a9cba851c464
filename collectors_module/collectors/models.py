"""Collectors, their captures (outbox + decision log) and per-minute counters."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

COLLECTOR_ACTIVE = 52001
COLLECTOR_INACTIVE = 52002


class Collector(models.Model):
    """A pathway from a source model version (as called by a caller) into its destination app."""

    app = models.ForeignKey("applications.App", on_delete=models.CASCADE, related_name="collectors")
    public_id = models.CharField(max_length=128)
    description = models.CharField(max_length=512, blank=True)
    pre_queue_workflow = models.ForeignKey(
        "workflows.Workflow", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    post_queue_workflow = models.ForeignKey(
        "workflows.Workflow", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    pre_queue_random_sample = models.FloatField(default=0.0)  # 0 = not set; (0, 1] keeps that share
    collect_outputs = models.BooleanField(default=False)
    status = models.IntegerField(default=COLLECTOR_ACTIVE)
    created_at = models.DateTimeField(default=timezone.now)
    modified_at = models.DateTimeField(auto_now=True)
    # Bumped by every write (services.collector_* and collector_flag); the in-process matching
    # index compares (count, max pk, sum of revisions) to notice changes made by any process.
    revision = models.PositiveIntegerField(default=0)

    # Source: the model version whose PostModelOutputs calls are captured.
    source_model_version = models.ForeignKey(
        "inference.ModelVersion", on_delete=models.CASCADE, related_name="collectors"
    )
    model_user_id = models.CharField(max_length=128)
    model_app_id = models.CharField(max_length=128)
    model_id = models.CharField(max_length=128)
    model_version_id = models.CharField(max_length=32)
    # The key used to post inputs; the collector stores the key row, never its secret.
    post_inputs_key = models.ForeignKey(
        "accounts.Key", null=True, on_delete=models.SET_NULL, related_name="collectors"
    )
    # NULL caller = any caller (only allowed when the owner owns the source model).
    caller = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )

    # Admission limits (extension: not in the Clarifai message). 0 = unlimited.
    max_per_minute = models.PositiveIntegerField(default=0)
    max_per_hour = models.PositiveIntegerField(default=0)
    max_per_day = models.PositiveIntegerField(default=0)
    max_pending = models.PositiveIntegerField(default=0)

    # Set when the worker found the collector unusable (e.g. its key was revoked).
    flagged_reason = models.CharField(max_length=512, blank=True)
    flagged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["app", "public_id"], name="collector_id_unique_per_app")
        ]
        indexes = [models.Index(fields=["source_model_version", "status"])]

    def __str__(self) -> str:
        return f"{self.app}/{self.public_id}"

    @property
    def is_active(self) -> bool:
        return self.status == COLLECTOR_ACTIVE


class CaptureState(models.TextChoices):
    ACCEPTED = "accepted"
    PROCESSING = "processing"
    RETRY = "retry"
    INGESTED = "ingested"
    FILTERED = "filtered"
    FAILED = "failed"
    EXPIRED = "expired"
    DROPPED = "dropped"  # dropped by a rule after acceptance (e.g. collector deactivated)


TERMINAL_STATES = (
    CaptureState.INGESTED,
    CaptureState.FILTERED,
    CaptureState.FAILED,
    CaptureState.EXPIRED,
    CaptureState.DROPPED,
)


class Capture(models.Model):
    """One accepted capture: the outbox row and its decision log. Ends in one terminal state."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    collector = models.ForeignKey(Collector, on_delete=models.CASCADE, related_name="captures")
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
        constraints = [
            models.UniqueConstraint(
                fields=["collector", "request_id", "input_index"],
                name="one_capture_per_request_input",
            )
        ]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"]),
            models.Index(fields=["collector", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"capture {self.pk} ({self.state})"


class CollectorCounter(models.Model):
    """Per-collector, per-minute counts by metric (matched, sampled_out, ingested, ...)."""

    collector = models.ForeignKey(Collector, on_delete=models.CASCADE, related_name="counters")
    metric = models.CharField(max_length=48)
    bucket = models.DateTimeField()  # start of the minute, UTC
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["collector", "metric", "bucket"], name="one_counter_per_bucket"
            )
        ]

    def __str__(self) -> str:
        return f"{self.collector_id} {self.metric} {self.bucket:%Y-%m-%d %H:%M}: {self.count}"
