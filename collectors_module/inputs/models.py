"""Inputs in an app: media (bytes in blob storage or a URL), text, concepts, regions, metadata."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


def input_blob_path(instance: Input, filename: str) -> str:
    return f"inputs/{instance.app_id}/{instance.content_hash[:2]}/{instance.content_hash}"


class Input(models.Model):
    app = models.ForeignKey("applications.App", on_delete=models.CASCADE, related_name="inputs")
    public_id = models.CharField(max_length=128)
    # The Clarifai `Data` message as JSON (snake_case), without image/text bytes, which live in
    # `image` (blob storage); keeps regions, concepts, metadata and text exactly as posted.
    data = models.JSONField(default=dict)
    image = models.FileField(upload_to=input_blob_path, max_length=255, blank=True)
    image_url = models.URLField(max_length=2048, blank=True)
    text = models.TextField(blank=True)
    # Source-model outputs posted alongside a captured input (collect_outputs).
    annotations = models.JSONField(default=list, blank=True)
    content_hash = models.CharField(max_length=64, blank=True, db_index=True)
    status_code = models.IntegerField(default=30000)
    created_at = models.DateTimeField(default=timezone.now)
    modified_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["app", "public_id"], name="input_id_unique_per_app")
        ]
        indexes = [models.Index(fields=["app", "-created_at"])]

    def __str__(self) -> str:
        return self.public_id
