"""A worker SIGKILLed in the middle of an export: the export is never reported successful with a
partial archive, no archive reaches storage, and asking again after its lease expired restarts
it on another worker and completes it; asking for a finished export does not redo it."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import pytest
from clarifai_grpc.grpc.api import resources_pb2
from django.conf import settings as django_settings

from collectors_module.datasets import services
from collectors_module.datasets.models import (
    DatasetVersion,
    DatasetVersionExport,
    DatasetVersionInput,
)

from .support import download, version_path, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

N = 40
SLOW = {
    "DATASET_EXPORT_BATCH_SIZE": "4",
    "DATASET_EXPORT_LEASE_SECONDS": "2",
    "COLLECTORS_FAULTS": "dataset_export_batch:sleep",
    "COLLECTORS_FAULT_SLEEP": "0.3",
}


def _archives() -> list[Path]:
    root = Path(django_settings.MEDIA_ROOT) / "dataset-exports"
    return sorted(root.rglob("*.zip")) if root.exists() else []


def test_killed_export_is_not_successful_and_restarts_to_a_complete_archive(
    api, client, alice, celery_workers
):
    base = f"/v2/users/{alice.user.username}/apps/{alice.app.public_id}"
    api.post(base + "/datasets", {"datasets": [{"id": "big"}]}, key=alice.secret)
    ids = [f"t{i:03d}" for i in range(N)]
    body = {"inputs": [{"id": i, "data": {"text": {"raw": f"text {i}"}}} for i in ids]}
    assert api.post(base + "/inputs", body, key=alice.secret)["status"]["code"] == 10000
    r = api.post(
        base + "/datasets/big/inputs",
        {"dataset_inputs": [{"input": {"id": i}} for i in ids]},
        key=alice.secret,
    )
    assert r["status"]["code"] == 10000, r
    api.post(
        base + "/datasets/big/versions", {"dataset_versions": [{"id": "v1"}]}, key=alice.secret
    )
    version = DatasetVersion.objects.get(public_id="v1")
    assert services.version_build(version.pk) == "ready"
    before = _archives()

    first = celery_workers.start(pool="solo", env=SLOW)
    vpath = version_path(alice, "big", "v1")
    exports = {"exports": [{"format": "CLARIFAI_DATA_PROTOBUF"}]}
    assert api.call("PUT", vpath + "/exports", exports, key=alice.secret)["status"]["code"] == 10000
    row = wait_for(
        lambda: DatasetVersionExport.objects.filter(status_code=64203, processed__gte=12).first(),
        what="an export midway",
        log=first.log,
    )
    assert row.processed < N
    first.kill()  # SIGKILL, mid-export

    row.refresh_from_db()
    assert row.status_code == 64203  # in progress: never success
    assert row.storage_name == ""
    assert _archives() == before  # nothing partial in storage
    time.sleep(2.5)  # its lease expires
    info = api.get(vpath, key=alice.secret)["dataset_version"]["export_info"]
    status = info["clarifai_data_protobuf"]["status"]
    assert status["code"] == 64203
    assert "worker stopped" in status["details"]
    assert not info["clarifai_data_protobuf"]["url"]

    # Asked again: restarted from the start on a new worker, completed.
    restarted = api.call("PUT", vpath + "/exports", exports, key=alice.secret)
    assert restarted["exports"][0]["status"]["code"] == 64201, restarted
    second = celery_workers.start(pool="solo", env={"DATASET_EXPORT_BATCH_SIZE": "4"})
    row = wait_for(
        lambda: DatasetVersionExport.objects.filter(pk=row.pk, status_code=64200).first(),
        what="the restarted export",
        log=second.log,
    )
    assert row.attempts == 2
    assert row.processed == row.total == N
    done = api.get(vpath, key=alice.secret)["dataset_version"]["export_info"]
    url = done["clarifai_data_protobuf"]["url"]
    code, blob, _ = download(client, url, alice.secret)
    assert code == 200
    zf = zipfile.ZipFile(io.BytesIO(blob))
    got = []
    for name in zf.namelist():
        if name != "mimetype":
            got.extend(i.id for i in resources_pb2.InputBatch.FromString(zf.read(name)).inputs)
    assert sorted(got) == ids  # complete, each input once
    assert len(_archives()) == len(before) + 1

    # A finished export asked for again: the same archive, no new attempt.
    again = api.call("PUT", vpath + "/exports", exports, key=alice.secret)
    assert again["exports"][0]["status"]["code"] == 64200
    assert again["exports"][0]["url"] == url
    time.sleep(1)
    row.refresh_from_db()
    assert row.attempts == 2
    assert len(_archives()) == len(before) + 1


def test_killed_version_build_is_rebuilt_whole(api, alice, celery_workers):
    base = f"/v2/users/{alice.user.username}/apps/{alice.app.public_id}"
    api.post(base + "/datasets", {"datasets": [{"id": "big"}]}, key=alice.secret)
    ids = [f"b{i:03d}" for i in range(N)]
    body = {
        "inputs": [{"id": i, "data": {"text": {"raw": i}}, "dataset_ids": ["big"]} for i in ids]
    }
    assert api.post(base + "/inputs", body, key=alice.secret)["status"]["code"] == 10000
    # Killed after its second batch of four had committed.
    first = celery_workers.start(
        pool="solo",
        env={**SLOW, "COLLECTORS_FAULTS": "dataset_version_batch:kill@2"},
    )
    api.post(
        base + "/datasets/big/versions", {"dataset_versions": [{"id": "v1"}]}, key=alice.secret
    )
    assert first.wait_exit(30) is not None, first.log()
    version = DatasetVersion.objects.get(public_id="v1")
    assert version.status_code == 64010  # in progress, never ready
    partial = DatasetVersionInput.objects.filter(version=version).count()
    assert 0 < partial < N
    vpath = version_path(alice, "big", "v1")
    early = api.call("PUT", vpath + "/exports", {"exports": [{"format": "COCO"}]}, key=alice.secret)
    assert early["status"]["code"] == 64010  # an export of a version being built: refused
    time.sleep(2.5)  # its lease expires; the next read of the version sends the build again
    second = celery_workers.start(pool="solo", env={"DATASET_EXPORT_BATCH_SIZE": "4"})
    assert api.get(vpath, key=alice.secret)["status"]["code"] == 10000
    wait_for(
        lambda: api.get(vpath, key=alice.secret)["dataset_version"]["status"]["code"] == 64015,
        what="the rebuilt version",
        log=second.log,
    )
    version.refresh_from_db()
    assert version.attempts == 2
    assert version.inputs_count == N
    frozen = list(
        DatasetVersionInput.objects.filter(version=version).values_list(
            "input_public_id", flat=True
        )
    )
    assert sorted(frozen) == ids  # whole, each input once


def test_failed_export_says_why_and_starts_over_when_asked_again(
    api, client, alice, celery_workers
):
    base = f"/v2/users/{alice.user.username}/apps/{alice.app.public_id}"
    api.post(base + "/datasets", {"datasets": [{"id": "ds"}]}, key=alice.secret)
    body = {"inputs": [{"id": "t1", "data": {"text": {"raw": "x"}}, "dataset_ids": ["ds"]}]}
    assert api.post(base + "/inputs", body, key=alice.secret)["status"]["code"] == 10000
    api.post(base + "/datasets/ds/versions", {"dataset_versions": [{"id": "v1"}]}, key=alice.secret)
    assert services.version_build(DatasetVersion.objects.get(public_id="v1").pk) == "ready"
    before = _archives()
    # Blob storage fails just before the archive would be saved.
    first = celery_workers.start(
        pool="solo", env={"COLLECTORS_FAULTS": "dataset_export_before_save:raise"}
    )
    vpath = version_path(alice, "ds", "v1")
    exports = {"exports": [{"format": "CLARIFAI_DATA_JSON"}]}
    api.call("PUT", vpath + "/exports", exports, key=alice.secret)
    row = wait_for(
        lambda: DatasetVersionExport.objects.filter(status_code=64202).first(),
        what="a failed export",
        log=first.log,
    )
    assert "InjectedFault" in row.status_details
    got = api.get(vpath, key=alice.secret)
    info = got["dataset_version"]["export_info"]["clarifai_data_json"]
    assert info["status"]["code"] == 64202
    assert "InjectedFault" in info["status"]["details"]
    assert not info["url"]
    assert _archives() == before
    first.stop()

    second = celery_workers.start(pool="solo")
    again = api.call("PUT", vpath + "/exports", exports, key=alice.secret)
    assert again["exports"][0]["status"]["code"] == 64201  # started over
    row = wait_for(
        lambda: DatasetVersionExport.objects.filter(status_code=64200).first(),
        what="the export, second try",
        log=second.log,
    )
    assert row.attempts == 2
    code, blob, _ = download(
        client,
        api.get(vpath, key=alice.secret)["dataset_version"]["export_info"]["clarifai_data_json"][
            "url"
        ],
        alice.secret,
    )
    assert code == 200
    assert "all/batch-00000_n1.json" in zipfile.ZipFile(io.BytesIO(blob)).namelist()
