"""Writers for datasets, their inputs, versions and exports (the only module that writes them).

Building a version and writing an export are Celery tasks (`datasets.tasks`) under leases on
the row: the task that claims a row bumps `attempts` and renews `lease_until` after every batch,
fenced by its `attempts`; a worker that dies stops renewing, and whoever comes next (the
redelivered message or a new request) takes over from the start. An export is marked successful
only by the fenced UPDATE that follows the complete archive's save to blob storage.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

from clarifai_grpc.grpc.api import resources_pb2
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from google.protobuf import json_format

from collectors_module.celery import app as celery_app
from collectors_module.core.errors import SC, ApiError
from collectors_module.core.faults import fault_point
from collectors_module.core.ids import new_hex_id, validate_id
from collectors_module.core.patching import (
    apply_to_dict,
    check_fields,
    check_metadata,
    patch_action,
)
from collectors_module.inputs.selectors import annotations_of_inputs, inputs_of_app
from collectors_module.inputs.services import annotations_import_pending, blobs_release_on_commit

from . import selectors
from .models import (
    EXPORT_FAILED,
    EXPORT_IN_PROGRESS,
    EXPORT_PENDING,
    EXPORT_SUCCESS,
    FORMATS,
    VERSION_FAILURE,
    VERSION_IN_PROGRESS,
    VERSION_PENDING,
    VERSION_READY,
    CollectorDataset,
    Dataset,
    DatasetInput,
    DatasetVersion,
    DatasetVersionExport,
    DatasetVersionInput,
)

log = logging.getLogger("collectors.datasets")

MAX_PER_REQUEST = 128
MAX_INPUT_IDS = 1000
MAX_DESCRIPTION = 512
PATCHABLE = ("description", "notes", "metadata")
IGNORED_ON_CREATE = ("app_id", "user_id", "visibility", "created_at", "modified_at")

_FAST_BROKER = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
    "socket_connect_timeout": 1,
    "socket_timeout": 2,
}

BUILD_TASK = "datasets.build_version"
EXPORT_TASK = "datasets.export"


class LeaseLost(Exception):
    """Another worker took the row over: stop without writing anything more."""


def _lease() -> timedelta:
    return timedelta(seconds=settings.DATASET_EXPORT_LEASE_SECONDS)


def _send(task: str, pk: int) -> None:
    """Publish after commit; a lost publish is repaired by `version_kick` / `export_request`."""

    def publish() -> None:
        try:
            # Fail fast (short timeouts, no retry loop): the request thread never hangs on a
            # broker that is down.
            with celery_app.connection_for_write(transport_options=_FAST_BROKER) as connection:
                celery_app.send_task(task, kwargs={"pk": pk}, connection=connection, retry=False)
        except Exception:  # the broker is down: the next request or page poll sends it again
            log.exception("could not publish %s for %s", task, pk)

    transaction.on_commit(publish)


# --- datasets ------------------------------------------------------------------------------


def _dataset_fields(pb, *, creating: bool) -> dict:
    given = check_fields(
        pb,
        code=SC.CONN_INVALID_REQUEST,
        what=f"Dataset '{pb.id[:64]}'",
        patchable=PATCHABLE,
        identity={"id": pb.id},
        ignored=IGNORED_ON_CREATE,
        creating=creating,
    )
    out: dict = {}
    if "description" in given:
        if len(pb.description) > MAX_DESCRIPTION:
            raise ApiError(
                SC.CONN_INVALID_REQUEST,
                f"description is longer than {MAX_DESCRIPTION} characters",
                field="description",
            )
        out["description"] = pb.description
    if "notes" in given:
        if len(pb.notes) > 64 * 1024:
            raise ApiError(SC.CONN_INVALID_REQUEST, "notes are longer than 64 KiB", field="notes")
        out["notes"] = pb.notes
    if "metadata" in given:
        out["metadata"] = check_metadata(
            json_format.MessageToDict(pb.metadata), code=SC.CONN_INVALID_REQUEST
        )
    for name in ("description", "notes"):
        if "\x00" in out.get(name, ""):
            raise ApiError(SC.CONN_INVALID_REQUEST, f"{name} holds a NUL character", field=name)
    return out


def datasets_create(*, app, dataset_pbs: list) -> list[Dataset]:
    """Create datasets, all or none (DATABASE_DUPLICATE_KEY naming an id that exists)."""
    if not dataset_pbs:
        raise ApiError(SC.CONN_INVALID_REQUEST, "datasets must hold at least one dataset")
    if len(dataset_pbs) > MAX_PER_REQUEST:
        raise ApiError(SC.CONN_INVALID_REQUEST, f"at most {MAX_PER_REQUEST} datasets per request")
    rows = []
    seen: set[str] = set()
    for pb in dataset_pbs:
        public_id = pb.id or new_hex_id()
        validate_id(public_id, "dataset id", field="id")
        if public_id in seen:
            raise ApiError(SC.CONN_INVALID_REQUEST, f"dataset id '{public_id}' is given twice")
        seen.add(public_id)
        rows.append(Dataset(app=app, public_id=public_id, **_dataset_fields(pb, creating=True)))
    try:
        with transaction.atomic():
            existing = set(
                Dataset.objects.filter(app=app, public_id__in=seen).values_list(
                    "public_id", flat=True
                )
            )
            if existing:
                raise _duplicate(sorted(existing)[0])
            Dataset.objects.bulk_create(rows)
    except IntegrityError as exc:
        raise _duplicate(rows[0].public_id) from exc
    return [selectors.dataset_for_app(app, r.public_id) for r in rows]


def _duplicate(public_id: str) -> ApiError:
    return ApiError(
        SC.DATABASE_DUPLICATE_KEY, f"Dataset '{public_id[:128]}' already exists", field="id"
    )


def datasets_patch(*, app, dataset_pbs: list, action: str) -> list[Dataset]:
    """`overwrite` replaces the fields given; `merge` merges metadata key by key (and sets the
    other fields given); `remove` takes metadata keys out."""
    action = patch_action(action, code=SC.CONN_INVALID_REQUEST, what="PatchDatasets")
    if not dataset_pbs:
        raise ApiError(SC.CONN_INVALID_REQUEST, "datasets must hold at least one dataset")
    if len(dataset_pbs) > MAX_PER_REQUEST:
        raise ApiError(SC.CONN_INVALID_REQUEST, f"at most {MAX_PER_REQUEST} datasets per request")
    with transaction.atomic():
        out = []
        for pb in dataset_pbs:
            row = (
                Dataset.objects.select_for_update().filter(app=app, public_id=pb.id).first()
                if pb.id
                else None
            )
            if row is None:
                raise ApiError(SC.CONN_DOES_NOT_EXIST, f"Dataset '{pb.id[:128]}' does not exist")
            fields = _dataset_fields(pb, creating=False)
            if "metadata" in fields:
                row.metadata = check_metadata(
                    apply_to_dict(action, row.metadata or {}, fields.pop("metadata")),
                    code=SC.CONN_INVALID_REQUEST,
                )
            for name, value in fields.items():
                setattr(row, name, "" if action == "remove" else value)
            row.save()
            out.append(row.public_id)
    return [selectors.dataset_for_app(app, i) for i in out]


def datasets_delete(*, app, dataset_ids: list[str]) -> int:
    """Delete datasets (their memberships, versions and exports; never the inputs), all or none."""
    wanted = list(dict.fromkeys(i for i in dataset_ids if i))
    if not wanted:
        raise ApiError(SC.CONN_INVALID_REQUEST, "dataset_ids must name at least one dataset")
    if len(wanted) > MAX_INPUT_IDS:
        raise ApiError(SC.CONN_INVALID_REQUEST, f"at most {MAX_INPUT_IDS} dataset ids")
    with transaction.atomic():
        rows = list(Dataset.objects.select_for_update().filter(app=app, public_id__in=wanted))
        missing = sorted(set(wanted) - {r.public_id for r in rows})
        if missing:
            raise ApiError(SC.CONN_DOES_NOT_EXIST, f"Dataset '{missing[0][:128]}' does not exist")
        names = list(
            DatasetVersionExport.objects.filter(version__dataset__in=rows)
            .exclude(storage_name="")
            .values_list("storage_name", flat=True)
        )
        blobs = selectors.orphaned_blobs(DatasetVersion.objects.filter(dataset__in=rows))
        Dataset.objects.filter(pk__in=[r.pk for r in rows]).delete()
        transaction.on_commit(lambda: _purge_archives(names))
        blobs_release_on_commit(blobs)
    return len(rows)


def _purge_archives(names: Iterable[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except Exception:
            log.exception("could not delete export archive %s", name)


# --- dataset inputs ------------------------------------------------------------------------


def dataset_inputs_add(*, app, dataset, input_ids: list[str]) -> list[str]:
    """Add the app's inputs (by id) to the dataset; ids already in it are kept once. All or
    none: an id that is not an input of this app is INPUT_DOES_NOT_EXIST."""
    wanted = list(dict.fromkeys(i for i in input_ids if i))
    if not wanted:
        raise ApiError(
            SC.INPUT_INVALID_REQUEST, "dataset_inputs must name at least one input", field="input"
        )
    if len(wanted) > MAX_INPUT_IDS:
        raise ApiError(SC.INPUT_INVALID_REQUEST, f"at most {MAX_INPUT_IDS} inputs per request")
    found = dict(inputs_of_app(app).filter(public_id__in=wanted).values_list("public_id", "pk"))
    missing = [i for i in wanted if i not in found]
    if missing:
        raise ApiError(
            SC.INPUT_DOES_NOT_EXIST, f"Input '{missing[0][:128]}' does not exist in this app"
        )
    now = timezone.now()
    DatasetInput.objects.bulk_create(
        [DatasetInput(dataset=dataset, input_id=found[i], created_at=now) for i in wanted],
        ignore_conflicts=True,
    )
    _touch(dataset)
    return wanted


def dataset_inputs_add_rows(*, dataset, input_pks: list[int]) -> None:
    """Add inputs (rows of the dataset's app, already checked by the caller) to the dataset."""
    if input_pks:
        now = timezone.now()
        DatasetInput.objects.bulk_create(
            [DatasetInput(dataset=dataset, input_id=pk, created_at=now) for pk in input_pks],
            ignore_conflicts=True,
        )
        _touch(dataset)


def dataset_inputs_add_matching(*, app, dataset, collector_id: str = "") -> int:
    """Add every input of the app that the gallery filter shows (all, or those captured by
    `collector_id`) with one INSERT ... SELECT; returns how many were new."""
    rows = inputs_of_app(app).order_by()
    if collector_id:
        rows = rows.filter(data__metadata__collector__collector_id=collector_id)
    before = DatasetInput.objects.filter(dataset=dataset).count()
    new = rows.exclude(pk__in=selectors.input_ids_in_dataset(dataset)).values_list("pk", flat=True)
    now = timezone.now()
    batch: list[DatasetInput] = []
    for pk in new.iterator(chunk_size=2000):
        batch.append(DatasetInput(dataset=dataset, input_id=pk, created_at=now))
        if len(batch) >= 2000:
            DatasetInput.objects.bulk_create(batch, ignore_conflicts=True)
            batch = []
    if batch:
        DatasetInput.objects.bulk_create(batch, ignore_conflicts=True)
    _touch(dataset)
    return DatasetInput.objects.filter(dataset=dataset).count() - before


def dataset_inputs_remove(*, app, dataset, input_ids: list[str]) -> int:
    wanted = list(dict.fromkeys(i for i in input_ids if i))
    if not wanted:
        raise ApiError(SC.INPUT_INVALID_REQUEST, "input_ids must name at least one input")
    if len(wanted) > MAX_INPUT_IDS:
        raise ApiError(SC.INPUT_INVALID_REQUEST, f"at most {MAX_INPUT_IDS} input ids")
    with transaction.atomic():
        rows = DatasetInput.objects.filter(dataset=dataset, input__public_id__in=wanted)
        present = set(rows.values_list("input__public_id", flat=True))
        missing = [i for i in wanted if i not in present]
        if missing:
            raise ApiError(
                SC.INPUT_DOES_NOT_EXIST,
                f"Input '{missing[0][:128]}' is not in dataset '{dataset.public_id}'",
            )
        n, _ = rows.delete()
    _touch(dataset)
    return n


def _touch(dataset) -> None:
    Dataset.objects.filter(pk=dataset.pk).update(modified_at=timezone.now())


# --- collectors filling datasets ------------------------------------------------------------


def collector_dataset_set(*, app, collector, dataset_id: str) -> Dataset | None:
    """Make `dataset_id` (of the collector's app) the collector's destination dataset; "" clears."""
    with transaction.atomic():
        if not dataset_id:
            CollectorDataset.objects.filter(collector=collector).delete()
            return None
        dataset = selectors.dataset_for_app(app, dataset_id)
        CollectorDataset.objects.update_or_create(
            collector=collector, defaults={"dataset": dataset}
        )
    return dataset


def add_ingested_inputs(pairs: list[tuple[int, int]]) -> int:
    """Called by the capture worker INSIDE the transaction that ingests the inputs: add each
    (collector pk, input pk) to the collector's destination dataset, if it has one."""
    if not pairs:
        return 0
    targets = dict(
        CollectorDataset.objects.filter(collector_id__in={c for c, _ in pairs}).values_list(
            "collector_id", "dataset_id"
        )
    )
    if not targets:
        return 0
    now = timezone.now()
    rows = [
        DatasetInput(dataset_id=targets[c], input_id=i, created_at=now)
        for c, i in pairs
        if c in targets
    ]
    DatasetInput.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


# --- versions ------------------------------------------------------------------------------


def version_create(
    *, app, dataset, version_id: str = "", description: str = "", metadata: dict | None = None
) -> DatasetVersion:
    """A new version of the dataset, PENDING until the build task has frozen its inputs."""
    public_id = version_id or new_hex_id()
    validate_id(public_id, "dataset version id", field="id")
    if len(description) > MAX_DESCRIPTION or "\x00" in description:
        raise ApiError(
            SC.CONN_INVALID_REQUEST,
            f"description must be at most {MAX_DESCRIPTION} characters without NUL",
            field="description",
        )
    metadata = check_metadata(metadata or {}, code=SC.CONN_INVALID_REQUEST)
    count = DatasetInput.objects.filter(dataset=dataset).count()
    if count > settings.DATASET_MAX_VERSION_INPUTS:
        raise ApiError(
            SC.CONN_EXCEEDS_LIMITS,
            f"the dataset holds {count} inputs; a version may hold at most "
            f"{settings.DATASET_MAX_VERSION_INPUTS}",
        )
    try:
        with transaction.atomic():
            row = DatasetVersion.objects.create(
                dataset=dataset,
                public_id=public_id,
                description=description,
                metadata=metadata,
                status_code=VERSION_PENDING,
                inputs_count=count,
            )
            _send(BUILD_TASK, row.pk)
    except IntegrityError as exc:
        raise ApiError(
            SC.DATABASE_DUPLICATE_KEY,
            f"Dataset version '{public_id}' already exists",
            field="id",
        ) from exc
    return row


VERSION_PATCHABLE = ("description", "metadata")
VERSION_IGNORED = (
    "app_id", "user_id", "dataset_id", "visibility", "created_at", "modified_at", "status",
    "processing_info", "metrics", "export_info", "request_origin",
)  # fmt: skip


def versions_patch(*, app, dataset, version_pbs: list, action: str) -> list[DatasetVersion]:
    """Change what describes versions (description, metadata), never what they froze: a patch
    naming their inputs' selection (annotation filters, predictions, embeddings) is refused.
    `overwrite` replaces the fields given, `merge` merges metadata key by key, `remove` takes
    metadata keys out (and clears a description given). All or none."""
    action = patch_action(action, code=SC.CONN_INVALID_REQUEST, what="PatchDatasetVersions")
    if not version_pbs:
        raise ApiError(SC.CONN_INVALID_REQUEST, "dataset_versions must hold at least one version")
    if len(version_pbs) > MAX_PER_REQUEST:
        raise ApiError(
            SC.CONN_INVALID_REQUEST, f"at most {MAX_PER_REQUEST} dataset versions per request"
        )
    with transaction.atomic():
        out = []
        for pb in version_pbs:
            if not pb.id:
                raise ApiError(SC.CONN_INVALID_REQUEST, "every dataset version needs its id")
            row = (
                DatasetVersion.objects.select_for_update()
                .filter(dataset=dataset, public_id=pb.id)
                .first()
            )
            if row is None:
                raise ApiError(
                    SC.CONN_DOES_NOT_EXIST, f"Dataset version '{pb.id[:128]}' does not exist"
                )
            given = check_fields(
                pb,
                code=SC.CONN_INVALID_REQUEST,
                what=f"Dataset version '{pb.id[:64]}'",
                patchable=VERSION_PATCHABLE,
                identity={"id": pb.id, "dataset_id": dataset.public_id},
                ignored=VERSION_IGNORED,
            )
            if "description" in given:
                description = "" if action == "remove" else pb.description
                if len(description) > MAX_DESCRIPTION or "\x00" in description:
                    raise ApiError(
                        SC.CONN_INVALID_REQUEST,
                        f"description must be at most {MAX_DESCRIPTION} characters without NUL",
                        field="description",
                    )
                row.description = description
            if "metadata" in given:
                row.metadata = check_metadata(
                    apply_to_dict(
                        action, row.metadata or {}, json_format.MessageToDict(pb.metadata)
                    ),
                    code=SC.CONN_INVALID_REQUEST,
                )
            row.save(update_fields=["description", "metadata", "modified_at"])
            out.append(row.pk)
    return list(DatasetVersion.objects.filter(pk__in=out).order_by("pk"))


def versions_delete(*, app, dataset, version_ids: list[str]) -> int:
    wanted = list(dict.fromkeys(i for i in version_ids if i))
    if not wanted:
        raise ApiError(SC.CONN_INVALID_REQUEST, "dataset_version_ids must name a version")
    if len(wanted) > MAX_INPUT_IDS:
        raise ApiError(SC.CONN_INVALID_REQUEST, f"at most {MAX_INPUT_IDS} version ids")
    with transaction.atomic():
        rows = list(
            DatasetVersion.objects.select_for_update().filter(dataset=dataset, public_id__in=wanted)
        )
        missing = sorted(set(wanted) - {r.public_id for r in rows})
        if missing:
            raise ApiError(
                SC.CONN_DOES_NOT_EXIST, f"Dataset version '{missing[0][:128]}' does not exist"
            )
        names = list(
            DatasetVersionExport.objects.filter(version__in=rows)
            .exclude(storage_name="")
            .values_list("storage_name", flat=True)
        )
        blobs = selectors.orphaned_blobs(rows)
        DatasetVersion.objects.filter(pk__in=[r.pk for r in rows]).delete()
        transaction.on_commit(lambda: _purge_archives(names))
        blobs_release_on_commit(blobs)
    return len(rows)


def _claim(model, pk: int, *, pending: int, in_progress: int):
    """Take the row (pending, or in progress under an expired lease): returns it with our
    `attempts` token, or None when it is not claimable (done, or another worker holds it)."""
    now = timezone.now()
    with transaction.atomic():
        row = model.objects.select_for_update().filter(pk=pk).first()
        if row is None:
            return None
        stale = row.status_code == in_progress and (
            row.lease_until is None or row.lease_until < now
        )
        if row.status_code != pending and not stale:
            return None
        row.status_code = in_progress
        row.attempts = row.attempts + 1
        row.lease_until = now + _lease()
        row.save(update_fields=["status_code", "attempts", "lease_until"])
    return row


def lease_holder_until(model, pk: int):
    """When the current holder's lease ends (for a redelivered task to retry after it)."""
    return model.objects.filter(pk=pk).values_list("status_code", "lease_until").first()


def _renew(model, pk: int, token: int, in_progress: int, **fields) -> None:
    n = model.objects.filter(pk=pk, attempts=token, status_code=in_progress).update(
        lease_until=timezone.now() + _lease(), **fields
    )
    if n != 1:
        raise LeaseLost()


def _frozen_annotation(row) -> dict:
    return {
        "id": row.public_id,
        "data": row.data or {},
        "model_version_id": row.model_version_id,
        "model_ref": row.model_ref or {},
        "user_id": row.user.username if row.user_id else "",
        "trusted": row.trusted,
    }


def version_build(pk: int) -> str:
    """Freeze the dataset's inputs and annotations into the version (the build task's body)."""
    version = _claim(DatasetVersion, pk, pending=VERSION_PENDING, in_progress=VERSION_IN_PROGRESS)
    if version is None:
        return "skipped"
    token = version.attempts
    dataset = Dataset.objects.select_related("app").get(pk=version.dataset_id)
    try:
        annotations_import_pending(app=dataset.app)
        # A previous attempt may have left part of the snapshot: start over.
        DatasetVersionInput.objects.filter(version=version).delete()
        members = (
            DatasetInput.objects.filter(dataset=dataset, created_at__lte=version.created_at)
            .select_related("input")
            .order_by("input_id")
            .iterator(chunk_size=settings.DATASET_EXPORT_BATCH_SIZE)
        )
        count = regions = 0
        batch = []
        for member in members:
            batch.append(member.input)
            if len(batch) >= settings.DATASET_EXPORT_BATCH_SIZE:
                count, regions = _freeze(version, token, batch, count, regions)
                batch = []
        if batch:
            count, regions = _freeze(version, token, batch, count, regions)
        n = DatasetVersion.objects.filter(
            pk=pk, attempts=token, status_code=VERSION_IN_PROGRESS
        ).update(
            status_code=VERSION_READY,
            status_details="",
            inputs_count=count,
            regions_count=regions,
            lease_until=None,
            modified_at=timezone.now(),
        )
        return "ready" if n else "lost"
    except LeaseLost:
        return "lost"
    except Exception as exc:
        log.exception("building dataset version %s failed", pk)
        DatasetVersion.objects.filter(pk=pk, attempts=token).update(
            status_code=VERSION_FAILURE,
            status_details=f"{type(exc).__name__}: {exc}"[:500],
            lease_until=None,
        )
        return "failed"


def _freeze(version, token: int, inputs: list, count: int, regions: int) -> tuple[int, int]:
    annotations = annotations_of_inputs(inputs)
    rows = []
    for inp in inputs:
        frozen = [_frozen_annotation(a) for a in annotations.get(inp.pk, [])]
        regions += len((inp.data or {}).get("regions", []) or [])
        regions += sum(len(a["data"].get("regions", []) or []) for a in frozen)
        rows.append(
            DatasetVersionInput(
                version=version,
                input_public_id=inp.public_id,
                data=inp.data or {},
                image_name=inp.image.name or "",
                image_url=inp.image_url,
                text=inp.text,
                annotations=frozen,
                input_created_at=inp.created_at,
            )
        )
    with transaction.atomic():
        _renew(DatasetVersion, version.pk, token, VERSION_IN_PROGRESS, inputs_count=count)
        DatasetVersionInput.objects.bulk_create(rows)
    fault_point("dataset_version_batch")
    return count + len(rows), regions


def version_kick(version) -> None:
    """Send the build again when it is stuck (publish lost, or its worker died)."""
    now = timezone.now()
    stuck = (version.status_code == VERSION_PENDING and version.modified_at < now - _lease()) or (
        version.status_code == VERSION_IN_PROGRESS
        and version.lease_until is not None
        and version.lease_until < now
    )
    if stuck:
        DatasetVersion.objects.filter(pk=version.pk).update(modified_at=now)
        with transaction.atomic():
            _send(BUILD_TASK, version.pk)


def datasets_sweep(*, limit: int = 100) -> dict[str, int]:
    """Send again the builds and exports that nobody is working on (beat, `datasets.sweep`):
    versions pending for a lease period or whose builder died, exports pending that long or
    whose writer died (those start over). A failed export waits for someone to ask again.
    Without it, a lost publish is repaired only when someone reads the version or asks again."""
    now = timezone.now()
    stale = now - _lease()
    versions = list(
        DatasetVersion.objects.filter(
            Q(status_code=VERSION_PENDING, modified_at__lt=stale)
            | Q(status_code=VERSION_IN_PROGRESS, lease_until__lt=now)
        ).order_by("pk")[:limit]
    )
    for version in versions:
        version_kick(version)
    resent = 0
    with transaction.atomic():
        rows = list(
            DatasetVersionExport.objects.select_for_update(skip_locked=True)
            .filter(
                Q(status_code=EXPORT_PENDING, updated_at__lt=stale)
                | Q(status_code=EXPORT_IN_PROGRESS, lease_until__lt=now)
            )
            .order_by("pk")[:limit]
        )
        for row in rows:
            if row.status_code == EXPORT_IN_PROGRESS:  # its writer died: start over
                _restart_export(row)
            else:
                row.updated_at = now
                row.save(update_fields=["updated_at"])
                _send(EXPORT_TASK, row.pk)
            resent += 1
    return {"versions": len(versions), "exports": resent}


# --- exports -------------------------------------------------------------------------------


def parse_format(value) -> str:
    """The format name for an enum number or name; CONN_INVALID_REQUEST for anything else."""
    enum = resources_pb2.DatasetVersionExportFormat
    if isinstance(value, int):
        name = enum.Name(value) if value in enum.values() else str(value)
    else:
        name = str(value or "").upper()
    if name not in FORMATS:
        raise ApiError(
            SC.CONN_INVALID_REQUEST,
            f"export format '{str(value)[:40]}' is not supported: use {', '.join(FORMATS)}",
            field="exports.format",
        )
    return name


def _version_ready(version) -> None:
    if version.status_code == VERSION_READY:
        return
    words = {
        VERSION_PENDING: "is waiting to be built",
        VERSION_IN_PROGRESS: "is being built",
        VERSION_FAILURE: f"failed to build ({version.status_details[:200]})",
    }
    raise ApiError(
        version.status_code if version.status_code != VERSION_FAILURE else VERSION_FAILURE,
        f"Dataset version '{version.public_id}' {words.get(version.status_code, 'is not ready')}; "
        "export it once it is ready (DATASET_VERSION_READY)",
    )


def _restart_export(row: DatasetVersionExport) -> None:
    """Start an export over from nothing (it failed, or its writer died): back to PENDING, its
    old archive deleted after the commit, the task sent again. Inside the caller's transaction."""
    old_name = row.storage_name
    row.status_code, row.status_details = EXPORT_PENDING, ""
    row.processed = row.size = 0
    row.storage_name = ""
    row.updated_at = timezone.now()
    row.save()
    if old_name:
        transaction.on_commit(lambda n=old_name: _purge_archives([n]))
    _send(EXPORT_TASK, row.pk)


def exports_request(*, version, formats: list[str]) -> list[DatasetVersionExport]:
    """Start (or report) the exports of a READY version. An export already pending, in progress
    or done is not started again; a failed one, or one whose worker died, starts over."""
    if not formats:
        raise ApiError(SC.CONN_INVALID_REQUEST, "exports must name at least one format")
    if len(formats) > len(FORMATS) * 2:
        raise ApiError(SC.CONN_INVALID_REQUEST, "too many exports in one request")
    names = list(dict.fromkeys(parse_format(f) for f in formats))
    _version_ready(version)
    out = []
    with transaction.atomic():
        for name in names:
            row, created = DatasetVersionExport.objects.select_for_update().get_or_create(
                version=version, format=name, defaults={"total": version.inputs_count}
            )
            restart = row.status_code == EXPORT_FAILED or selectors.export_is_stale(row)
            stuck = (
                row.status_code == EXPORT_PENDING
                and not created
                and row.updated_at < timezone.now() - _lease()
            )
            if created or stuck:
                _send(EXPORT_TASK, row.pk)
                row.updated_at = timezone.now()
                row.save(update_fields=["updated_at"])
            elif restart:
                _restart_export(row)
            out.append(row)
    return out


def export_claim(pk: int):
    return _claim(DatasetVersionExport, pk, pending=EXPORT_PENDING, in_progress=EXPORT_IN_PROGRESS)


def export_progress(export, token: int, *, processed: int, total: int) -> None:
    """Renew the lease and record progress; LeaseLost when another worker has taken over."""
    _renew(
        DatasetVersionExport,
        export.pk,
        token,
        EXPORT_IN_PROGRESS,
        processed=processed,
        total=total,
        updated_at=timezone.now(),
    )


def export_finish(export, token: int, *, storage_name: str, size: int) -> bool:
    """Mark the export successful (the archive is complete and saved). False: lost the lease."""
    n = DatasetVersionExport.objects.filter(
        pk=export.pk, attempts=token, status_code=EXPORT_IN_PROGRESS
    ).update(
        status_code=EXPORT_SUCCESS,
        status_details="",
        storage_name=storage_name,
        size=size,
        processed=F("total"),
        lease_until=None,
        updated_at=timezone.now(),
    )
    if not n:
        _purge_archives([storage_name])
    return bool(n)


def export_fail(export, token: int, reason: str) -> None:
    DatasetVersionExport.objects.filter(
        Q(pk=export.pk, attempts=token) & ~Q(status_code=EXPORT_SUCCESS)
    ).update(
        status_code=EXPORT_FAILED,
        status_details=reason[:500],
        lease_until=None,
        updated_at=timezone.now(),
    )


def sizes_record(sizes: dict[int, tuple[int, int]]) -> None:
    """Store image sizes read by an export on the frozen rows (COCO needs them)."""
    rows = [DatasetVersionInput(pk=pk, width=w, height=h) for pk, (w, h) in sizes.items()]
    DatasetVersionInput.objects.bulk_update(rows, ["width", "height"], batch_size=500)
