"""Tenant-scoped reads of datasets, their inputs, versions and exports."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from collectors_module.core.errors import SC, ApiError
from collectors_module.inputs.models import Input

from .models import (
    EXPORT_IN_PROGRESS,
    CollectorDataset,
    Dataset,
    DatasetInput,
    DatasetVersion,
    DatasetVersionExport,
    DatasetVersionInput,
)


def datasets_of_app(app):
    return (
        Dataset.objects.filter(app=app)
        .select_related("app__owner")
        .annotate(inputs_total=Count("members", distinct=True))
        .order_by("-created_at", "-pk")
    )


def datasets_of_owner(user):
    """Every dataset in the user's own apps (the user-level ListDatasets)."""
    return (
        Dataset.objects.filter(app__owner=user)
        .select_related("app__owner")
        .annotate(inputs_total=Count("members", distinct=True))
        .order_by("-created_at", "-pk")
    )


def dataset_for_app(app, dataset_id: str) -> Dataset:
    """One dataset of THIS app (21xxx-style 'does not exist' for any other tenant's)."""
    row = datasets_of_app(app).filter(public_id=dataset_id).first() if dataset_id else None
    if row is None:
        raise ApiError(
            SC.CONN_DOES_NOT_EXIST,
            f"Dataset '{dataset_id[:128]}' does not exist",
            field="dataset_id",
        )
    return row


def members_of_dataset(dataset):
    """The dataset's DatasetInput rows with their inputs, newest first."""
    return (
        DatasetInput.objects.filter(dataset=dataset)
        .select_related("input__app")
        .order_by("-created_at", "-pk")
    )


def member_of_dataset(dataset, input_id: str) -> DatasetInput:
    row = members_of_dataset(dataset).filter(input__public_id=input_id).first()
    if row is None:
        raise ApiError(
            SC.INPUT_DOES_NOT_EXIST,
            f"Input '{input_id[:128]}' is not in dataset '{dataset.public_id}'",
            field="input_id",
        )
    return row


def input_ids_in_dataset(dataset):
    """A subquery of the input pks in the dataset (for the inputs gallery filter)."""
    return DatasetInput.objects.filter(dataset=dataset).values("input_id")


def versions_of_dataset(dataset):
    return (
        DatasetVersion.objects.filter(dataset=dataset)
        .select_related("dataset__app__owner")
        .order_by("-created_at", "-pk")
    )


def version_for_dataset(dataset, version_id: str) -> DatasetVersion:
    row = versions_of_dataset(dataset).filter(public_id=version_id).first() if version_id else None
    if row is None:
        raise ApiError(
            SC.CONN_DOES_NOT_EXIST,
            f"Dataset version '{version_id[:128]}' does not exist in dataset '{dataset.public_id}'",
            field="dataset_version_id",
        )
    return row


def exports_of_version(version) -> dict[str, DatasetVersionExport]:
    return {e.format: e for e in DatasetVersionExport.objects.filter(version=version)}


def export_for_version(version, fmt: str) -> DatasetVersionExport | None:
    return DatasetVersionExport.objects.filter(version=version, format=fmt).first()


def export_is_stale(export: DatasetVersionExport) -> bool:
    """An in-progress export whose worker stopped renewing its lease."""
    return (
        export.status_code == EXPORT_IN_PROGRESS
        and export.lease_until is not None
        and export.lease_until < timezone.now()
    )


def version_items(version, *, batch: int = 0):
    """The frozen inputs of a version in a stable order, streamed from the database."""
    return (
        DatasetVersionInput.objects.filter(version=version)
        .order_by("pk")
        .iterator(chunk_size=batch or settings.DATASET_EXPORT_BATCH_SIZE)
    )


def dataset_of_collector(collector) -> Dataset | None:
    row = CollectorDataset.objects.filter(collector=collector).select_related("dataset").first()
    return row.dataset if row else None


def datasets_of_collectors(collectors) -> dict[int, str]:
    """{collector pk: dataset public id} for these collectors (one query; for Show All)."""
    rows = CollectorDataset.objects.filter(collector__in=list(collectors)).values_list(
        "collector_id", "dataset__public_id"
    )
    return dict(rows)


def blob_in_use(name: str) -> bool:
    """True while a frozen version refers to this blob (inputs' blob purge asks)."""
    return DatasetVersionInput.objects.filter(image_name=name).exists()


def orphaned_blobs(versions) -> set[str]:
    """Blobs of these versions that no input refers to any more (deleted after the version)."""
    rows = (
        DatasetVersionInput.objects.filter(version__in=versions)
        .exclude(image_name="")
        .exclude(image_name__in=Input.objects.values("image"))
        .values_list("image_name", flat=True)
        .distinct()
    )
    return set(rows)
