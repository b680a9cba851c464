"""Models and their versions. A version names the runner that computes its outputs."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from collectors_module.applications.models import Visibility


class Model(models.Model):
    app = models.ForeignKey("applications.App", on_delete=models.CASCADE, related_name="models")
    public_id = models.CharField(max_length=128)
    name = models.CharField(max_length=256, blank=True)
    description = models.TextField(blank=True)
    model_type_id = models.CharField(max_length=64)
    visibility = models.IntegerField(choices=Visibility.choices, default=Visibility.PRIVATE)
    # Clarifai `OutputInfo` as JSON: {"data": {"concepts": [...]}, "params": {...}}.
    output_info = models.JSONField(default=dict, blank=True)
    # The owner's opt-in: collectors with a blank caller capture every caller's predictions on
    # this model (off: only the owner's own). Shown to callers in GetModel, on the model's page
    # and in every predict output's model (metadata.capture_all_callers).
    capture_all_callers = models.BooleanField(default=False, db_default=False)
    created_at = models.DateTimeField(default=timezone.now)
    modified_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["app", "public_id"], name="model_id_unique_per_app")
        ]

    def __str__(self) -> str:
        return f"{self.app}/{self.public_id}"

    @property
    def is_public(self) -> bool:
        return self.visibility == Visibility.PUBLIC and self.app.is_public

    def latest_version(self) -> ModelVersion | None:
        return self.versions.order_by("-created_at", "-pk").first()


class ModelVersion(models.Model):
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="versions")
    public_id = models.CharField(max_length=32)  # 32 hex characters
    description = models.CharField(max_length=512, blank=True)
    output_info = models.JSONField(default=dict, blank=True)
    # Which runner computes outputs: "builtin:<name>", "remote:openai-chat", "remote:kserve-v2",
    # "operator:<model_type_id>". Config (endpoint, remote model name, ...) in runner_config.
    runner = models.CharField(max_length=64)
    runner_config = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["model", "public_id"], name="version_id_unique_per_model"
            )
        ]
        indexes = [models.Index(fields=["public_id"])]

    def __str__(self) -> str:
        return f"{self.model}@{self.public_id}"
