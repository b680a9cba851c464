"""Inputs in an app: media (bytes in blob storage or a URL), text, concepts, regions, metadata."""

from __future__ import annotations

from django.conf import settings
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
    # Source-model outputs posted alongside a captured input (collect_outputs), as collected.
    # They are served as `Annotation` rows; `annotations_pending` marks an input whose list has
    # not been turned into rows yet (writers that bulk-insert inputs leave it True; the
    # annotation services import such inputs before any annotation read).
    annotations = models.JSONField(default=list, blank=True)
    annotations_pending = models.BooleanField(default=True)
    content_hash = models.CharField(max_length=64, blank=True, db_index=True)
    status_code = models.IntegerField(default=30000)
    created_at = models.DateTimeField(default=timezone.now)
    modified_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["app", "public_id"], name="input_id_unique_per_app")
        ]
        indexes = [
            models.Index(fields=["app", "-created_at"]),
            models.Index(
                fields=["app"],
                condition=models.Q(annotations_pending=True),
                name="input_annotations_pending",
            ),
        ]

    def __str__(self) -> str:
        return self.public_id


class Annotation(models.Model):
    """Clarifai's `Annotation`: data (concepts, regions, text, metadata) about one input, made by
    a user (PostAnnotations) or by a model (a collector's collected outputs: `model_version_id`
    and `model_ref` name the source model)."""

    app = models.ForeignKey(
        "applications.App", on_delete=models.CASCADE, related_name="annotations"
    )
    input = models.ForeignKey(Input, on_delete=models.CASCADE, related_name="annotation_rows")
    public_id = models.CharField(max_length=128)
    data = models.JSONField(default=dict, blank=True)  # the `Data` message (snake_case JSON)
    annotation_info = models.JSONField(default=dict, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    model_version_id = models.CharField(max_length=32, blank=True)
    # {"user_id", "app_id", "model_id"} of the model that produced the annotation.
    model_ref = models.JSONField(default=dict, blank=True)
    status_code = models.IntegerField(default=24150)  # ANNOTATION_SUCCESS
    trusted = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    modified_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["app", "public_id"], name="annotation_id_unique_per_app"
            )
        ]
        indexes = [
            models.Index(fields=["app", "input"]),
            models.Index(fields=["app", "model_version_id"]),
        ]

    def __str__(self) -> str:
        return self.public_id


class InputFingerprint(models.Model):
    """Content hashes of an input, kept as it is created (`inputs.fingerprints`), so a
    near-duplicate check is an indexed lookup: the exact hash, the normalised text hash, and the
    image's perceptual hash with its four 16-bit bands each indexed (core.fingerprints)."""

    input = models.OneToOneField(
        Input, on_delete=models.CASCADE, primary_key=True, related_name="fingerprint"
    )
    app = models.ForeignKey("applications.App", on_delete=models.CASCADE, db_index=False)
    exact = models.CharField(max_length=64)
    text = models.CharField(max_length=64, blank=True)
    phash = models.BigIntegerField(null=True)
    band0 = models.IntegerField(null=True)
    band1 = models.IntegerField(null=True)
    band2 = models.IntegerField(null=True)
    band3 = models.IntegerField(null=True)

    class Meta:
        indexes = [
            models.Index(fields=["app", "exact"], name="fingerprint_exact"),
            models.Index(
                fields=["app", "text"], name="fingerprint_text", condition=~models.Q(text="")
            ),
            *(
                models.Index(
                    fields=["app", f"band{i}"],
                    name=f"fingerprint_band{i}",
                    # Index-only lookups (inputs.fingerprints). Not partial: PostgreSQL does not
                    # scan a partial index index-only when the query filters on phash.
                    include=["phash", "input"],
                )
                for i in range(4)
            ),
        ]

    def __str__(self) -> str:
        return f"fingerprint of input {self.input_id}"
