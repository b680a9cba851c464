"""Clarifai's Python SDK dataset calls against the live TLS gRPC server, with a real Celery
worker building the version and its export (see python/sdk_datasets.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.datasets.support import qr_png

SCRIPT = Path(__file__).resolve().parent / "python" / "sdk_datasets.py"

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

OPERATIONS = [
    "App.create_dataset",
    "App.create_dataset refuses a duplicate",
    "App.list_datasets",
    "Inputs.upload_from_bytes into the dataset",
    "Dataset.list_inputs",
    "Dataset.create_version",
    "Dataset.list_versions",
    "the version is built",
    "Dataset.archive_zip",
    "DatasetExportReader reads the archive",
    "Dataset.export",
    "another user's dataset does not exist",
]


@pytest.fixture
def media_host(live_server, settings, monkeypatch):
    """Archive and media URLs point at a live web server, so the SDK can download them."""
    monkeypatch.delenv("COLLECTORS_PUBLIC_URL", raising=False)
    settings.COLLECTORS_PUBLIC_URL = live_server.url
    return live_server.url


def test_python_sdk_dataset_calls(run_sdk, alice, bob, celery_workers, media_host, tmp_path):
    from collectors_module.datasets.models import DatasetVersionExport

    # The worker writes the archive, whose media URLs must name the live server too.
    worker = celery_workers.start(pool="solo", env={"COLLECTORS_PUBLIC_URL": media_host})
    images = []
    for i in range(3):
        path = tmp_path / f"qr{i}.png"
        path.write_bytes(qr_png(f"sdk-{i}", 360 + 40 * i, 300, (20, 20)))
        images.append(str(path))
    cfg = {
        "user_id": alice.user.username,
        "app_id": alice.app.public_id,
        "other_user": bob.user.username,
        "other_app": bob.app.public_id,
        "images": images,
    }
    report, _ = run_sdk(SCRIPT, cfg, pat=alice.secret, user_id=alice.user.username)
    results = report["results"]
    failed = {name: why for name, why in results.items() if why != "ok"}
    assert not failed, "\n\n".join(f"{n}: {w}" for n, w in failed.items()) + worker.log()
    assert list(results) == OPERATIONS
    assert report["facts"]["archive_inputs"] == 3
    # Dataset.export downloaded each image (through the hosted media path) and wrote its labels.
    files = report["facts"]["export_files"]
    assert sorted(f for f in files if "/inputs/" in f) == [
        f"all/inputs/sdk-img-{i}.png" for i in range(3)
    ], files
    assert len([f for f in files if "/annotations/" in f]) == 3, files
    export = DatasetVersionExport.objects.get()
    assert export.format == "CLARIFAI_DATA_PROTOBUF"
    assert export.attempts == 1  # the SDK polled the same export, it never started a second
