"""The capture engine's tables: the outbox with its decision log, and per-minute counters.

Both tables kept the names they had when they lived in the `collectors` app.
"""

from __future__ import annotations

import uuid

from clarifai_grpc.grpc.api import resources_pb2
from django.conf import settings
from django.db import models
from django.utils import timezone

from collectors_module.core.protojson import from_dict, to_dict


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
    # The original input as a serialized `Data` without its media bytes, the bytes apart (both
    # purged when the capture ends), and the source model's `Output` for it, serialized. Kept as
    # the protobuf bytes the serving process handed over: nothing on the way converts them.
    input_pb = models.BinaryField(null=True, blank=True)
    payload = models.BinaryField(null=True, blank=True)
    output_pb = models.BinaryField(null=True, blank=True)
    # Rows written before the binary columns hold JSON here instead.
    input_data = models.JSONField(default=dict, blank=True)
    outputs = models.JSONField(default=list, blank=True)
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
            # Retention finds finished rows by age through this (capture/retention.py).
            models.Index(
                fields=["finished_at"],
                name="capture_terminal_finished_idx",
                condition=models.Q(state__in=[s.value for s in TERMINAL_STATES]),
            ),
        ]

    def __str__(self) -> str:
        return f"capture {self.pk} ({self.state})"

    def input_message(self) -> resources_pb2.Data:
        """The captured input `Data` (without media bytes)."""
        if self.input_pb is not None:
            return resources_pb2.Data.FromString(bytes(self.input_pb))
        data = from_dict(self.input_data or {}, resources_pb2.Data)
        data.image.ClearField("base64")
        return data

    def output_message(self) -> resources_pb2.Output:
        """The source model's `Output` for this input (empty when none was stored)."""
        if self.output_pb is not None:
            return resources_pb2.Output.FromString(bytes(self.output_pb))
        outputs = self.outputs or []
        first = outputs[0] if isinstance(outputs, list) and outputs else outputs
        if not isinstance(first, dict):
            return resources_pb2.Output()
        if "data" not in first:
            first = {"data": first}
        return from_dict(first, resources_pb2.Output)

    def input_json(self) -> dict:
        return to_dict(self.input_message(), compact=True)

    def output_json(self) -> dict:
        return to_dict(self.output_message(), compact=True)


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
        indexes = [models.Index(fields=["bucket"], name="collectorcounter_bucket_idx")]

    def __str__(self) -> str:
        return f"{self.collector_id} {self.metric} {self.bucket:%Y-%m-%d %H:%M}: {self.count}"
