"""Datasets of an app, their frozen versions and the versions' export archives.

A `Dataset` names a set of the app's inputs (`DatasetInput`). A `DatasetVersion` is a snapshot:
`DatasetVersionInput` rows copy each input's data and annotations as they were when the version
was built, so later changes to the inputs do not alter it. A `DatasetVersionExport` is one
archive of a version in one format, built by a Celery task under a lease.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

# Clarifai status codes (clarifai-grpc status_code.proto) stored on the rows.
VERSION_PENDING = 64005
VERSION_IN_PROGRESS = 64010
VERSION_READY = 64015
VERSION_FAILURE = 64020

EXPORT_SUCCESS = 64200
EXPORT_PENDING = 64201
EXPORT_FAILED = 64202
EXPORT_IN_PROGRESS = 64203

FORMATS = ("CLARIFAI_DATA_PROTOBUF", "CLARIFAI_DATA_JSON", "COCO")


class Dataset(models.Model):
    app = models.ForeignKey("applications.App", on_delete=models.CASCADE, related_name="datasets")
    public_id = models.CharField(max_length=128)
    description = models.CharField(max_length=512, blank=True)
    notes = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    modified_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["app", "public_id"], name="dataset_id_unique_per_app")
        ]

    def __str__(self) -> str:
        return self.public_id


class DatasetInput(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="members")
    input = models.ForeignKey("inputs.Input", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset", "input"], name="dataset_input_unique")
        ]
        indexes = [models.Index(fields=["input"], name="dataset_input_by_input")]

    def __str__(self) -> str:
        return f"{self.dataset_id}:{self.input_id}"


class DatasetVersion(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="versions")
    public_id = models.CharField(max_length=128)
    description = models.CharField(max_length=512, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    status_code = models.IntegerField(default=VERSION_PENDING)
    status_details = models.CharField(max_length=512, blank=True)
    inputs_count = models.PositiveIntegerField(default=0)
    regions_count = models.PositiveIntegerField(default=0)
    # Building lease: a worker that dies while building leaves it to expire; the next build
    # attempt (redelivery or the sweep in `services.version_build`) starts over.
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    modified_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["dataset", "public_id"], name="dataset_version_id_unique"
            )
        ]

    def __str__(self) -> str:
        return self.public_id


class DatasetVersionInput(models.Model):
    """One input of a version, frozen: its data, media reference and annotations then."""

    version = models.ForeignKey(DatasetVersion, on_delete=models.CASCADE, related_name="items")
    input_public_id = models.CharField(max_length=128)
    data = models.JSONField(default=dict)  # the input's `Data` (snake_case), without media
    image_name = models.CharField(max_length=255, blank=True, db_index=True)  # blob name
    image_url = models.URLField(max_length=2048, blank=True)
    text = models.TextField(blank=True)
    # [{"id", "data", "model_version_id", "model_ref", "user_id"}...] as they were.
    annotations = models.JSONField(default=list, blank=True)
    input_created_at = models.DateTimeField()
    # Filled by the first export that reads the image (COCO needs sizes); None = not read yet.
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["version", "input_public_id"], name="dataset_version_input_unique"
            )
        ]

    def __str__(self) -> str:
        return self.input_public_id


class DatasetVersionExport(models.Model):
    version = models.ForeignKey(DatasetVersion, on_delete=models.CASCADE, related_name="exports")
    format = models.CharField(max_length=32)
    status_code = models.IntegerField(default=EXPORT_PENDING)
    status_details = models.CharField(max_length=512, blank=True)
    processed = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    size = models.BigIntegerField(default=0)
    storage_name = models.CharField(max_length=512, blank=True)
    # The task holding the export renews the lease while it works; `attempts` fences its writes.
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["version", "format"], name="dataset_export_unique")
        ]

    def __str__(self) -> str:
        return f"{self.version_id}:{self.format}"


class CollectorDataset(models.Model):
    """The destination dataset of a collector (extension: not in Clarifai's Collector)."""

    collector = models.OneToOneField(
        "collectors.Collector", on_delete=models.CASCADE, related_name="destination_dataset"
    )
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="collectors")
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.collector_id} -> {self.dataset_id}"
