"""The datasets sweep (beat): builds and exports that nobody works on, because their publish
was lost or their worker died, are sent again without anyone reading the version or asking
again; a failed export is left for its owner to ask for again."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from collectors_module.datasets import services
from collectors_module.datasets.models import (
    EXPORT_FAILED,
    EXPORT_PENDING,
    EXPORT_SUCCESS,
    VERSION_READY,
    DatasetVersion,
    DatasetVersionExport,
    DatasetVersionInput,
)

from .support import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

N = 24


def _dataset_with_inputs(api, alice) -> str:
    base = f"/v2/users/{alice.user.username}/apps/{alice.app.public_id}"
    api.post(base + "/datasets", {"datasets": [{"id": "ds"}]}, key=alice.secret)
    body = {
        "inputs": [
            {"id": f"s{i:02d}", "data": {"text": {"raw": f"t{i}"}}, "dataset_ids": ["ds"]}
            for i in range(N)
        ]
    }
    assert api.post(base + "/inputs", body, key=alice.secret)["status"]["code"] == 10000
    return base


def test_the_sweep_rebuilds_a_version_whose_worker_died(api, alice, celery_workers):
    base = _dataset_with_inputs(api, alice)
    first = celery_workers.start(
        pool="solo",
        env={
            "DATASET_EXPORT_BATCH_SIZE": "4",
            "DATASET_EXPORT_LEASE_SECONDS": "1",
            "COLLECTORS_FAULTS": "dataset_version_batch:kill@2",
        },
    )
    api.post(base + "/datasets/ds/versions", {"dataset_versions": [{"id": "v1"}]}, key=alice.secret)
    assert first.wait_exit(30) is not None, first.log()
    version = DatasetVersion.objects.get(public_id="v1")
    assert version.status_code == 64010  # in progress; its builder is gone
    second = celery_workers.start(pool="solo", env={"DATASET_EXPORT_BATCH_SIZE": "4"})
    time.sleep(1.2)  # the dead builder's lease runs out
    assert services.datasets_sweep() == {"versions": 1, "exports": 0}  # what beat runs
    wait_for(
        lambda: DatasetVersion.objects.get(pk=version.pk).status_code == VERSION_READY,
        what="the rebuilt version",
        log=second.log,
    )
    assert DatasetVersionInput.objects.filter(version=version).count() == N
    assert services.datasets_sweep() == {"versions": 0, "exports": 0}  # nothing left to do


def test_the_sweep_sends_an_export_whose_publish_was_lost(api, alice, celery_workers, settings):
    settings.DATASET_EXPORT_LEASE_SECONDS = 1
    base = _dataset_with_inputs(api, alice)
    api.post(base + "/datasets/ds/versions", {"dataset_versions": [{"id": "v1"}]}, key=alice.secret)
    version = DatasetVersion.objects.get(public_id="v1")
    assert services.version_build(version.pk) == "ready"
    # As if the export's message never reached the broker: the row waits, pending.
    long_ago = timezone.now() - timedelta(seconds=5)
    lost = DatasetVersionExport.objects.create(
        version=version, format="CLARIFAI_DATA_JSON", total=N, updated_at=long_ago
    )
    failed = DatasetVersionExport.objects.create(
        version=version,
        format="COCO",
        total=N,
        status_code=EXPORT_FAILED,
        status_details="storage was down",
        updated_at=long_ago,
    )
    assert lost.status_code == EXPORT_PENDING
    worker = celery_workers.start(pool="solo")
    assert services.datasets_sweep() == {"versions": 0, "exports": 1}
    wait_for(
        lambda: DatasetVersionExport.objects.get(pk=lost.pk).status_code == EXPORT_SUCCESS,
        what="the export the sweep sent",
        log=worker.log,
    )
    failed.refresh_from_db()
    assert failed.status_code == EXPORT_FAILED  # left for the owner to ask again
    assert services.datasets_sweep() == {"versions": 0, "exports": 0}


def test_beat_runs_the_sweep():
    entry = django_settings.CELERY_BEAT_SCHEDULE["datasets-sweep"]
    assert entry["task"] == "datasets.sweep"
    assert entry["schedule"] == django_settings.DATASET_SWEEP_SECONDS
