"""Collectors: the resource (source, caller, workflows, destination, limits, status).

Their captures and counters belong to the capture engine (`collectors_module.capture.models`)."""

from __future__ import annotations

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

    # Near-duplicate suppression (extension): the worker drops a capture whose content is the
    # same as, or within `near_duplicate_max_distance` pHash bits of, an input of the app.
    near_duplicate = models.BooleanField(default=False)
    near_duplicate_max_distance = models.PositiveSmallIntegerField(default=4)

    # Deactivation keeps what was already accepted: captures made before `deactivated_at` are
    # still delivered; `discarded_before` (set when the user chose to discard) ends every capture
    # made before it with the reason `discarded`.
    deactivated_at = models.DateTimeField(null=True, blank=True)
    discarded_before = models.DateTimeField(null=True, blank=True)

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
