"""An ingested input and its destination-dataset membership commit together: a worker killed
inside the ingest transaction leaves neither; once the capture is retried both exist, once."""

from __future__ import annotations

import pytest

from collectors_module.capture.models import Capture, CaptureState
from collectors_module.datasets.models import Dataset, DatasetInput
from collectors_module.datasets.services import collector_dataset_set
from collectors_module.inputs.models import Input
from tests.capture.test_faults import drain

from .support import QR, predict_qr, qr_png

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_killed_inside_the_ingest_transaction_leaves_neither_input_nor_membership(
    api, alice, make_collector, celery_workers, run_sweep
):
    dataset = Dataset.objects.create(app=alice.app, public_id="dest")
    collector = make_collector(alice, "qr", source=QR)
    collector_dataset_set(app=alice.app, collector=collector, dataset_id="dest")
    worker = celery_workers.start(
        pool="solo", env={"COLLECTORS_FAULTS": "in_ingest_transaction:kill"}
    )
    predict_qr(api, alice.secret, qr_png("atomic"))
    assert worker.wait_exit(30) is not None, worker.log()
    (capture,) = Capture.objects.filter(collector=collector)
    assert capture.state == CaptureState.PROCESSING  # killed before the commit
    assert not Input.objects.filter(app=alice.app).exists()
    assert not DatasetInput.objects.exists()

    celery_workers.start(pool="solo")
    states = drain([capture.pk], lambda: run_sweep(), timeout=60)
    assert set(states.values()) == {CaptureState.INGESTED}, states
    (inp,) = Input.objects.filter(app=alice.app)
    assert list(DatasetInput.objects.values_list("dataset_id", "input_id")) == [
        (dataset.pk, inp.pk)
    ]
