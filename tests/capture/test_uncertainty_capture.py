"""Uncertainty operators in collectors: inline at admission (operator-only pre-queue workflow, on
the prediction's own output) and in real worker processes (post-queue), on real colour outputs."""

from __future__ import annotations

import pytest

from collectors_module.capture import counters
from collectors_module.capture.models import Capture, CaptureState
from collectors_module.inputs.models import Input
from tests.capture.test_pipeline import wait_terminal
from tests.support import rules

pytestmark = pytest.mark.django_db(transaction=True)

RED, BLUE = (220, 20, 30), (20, 40, 220)


@pytest.mark.parametrize(
    ("type_id", "params"),
    [
        ("least-confidence", {"threshold": 0.3}),  # mixed: 1 - 0.5 = 0.5 > 0.3; solid: 0
        ("margin-below", {"threshold": 0.2}),  # mixed: ~0; solid: 1
        ("entropy-above", {"threshold": 0.5}),  # mixed: ~1; solid: 0
    ],
)
def test_inline_pre_queue_keeps_the_uncertain_prediction(
    api, alice, make_collector, type_id, params
):
    rules.operator_model(alice.app, "unsure", type_id, params)
    rules.source_then(alice.app, "uncertain", "unsure")
    c = make_collector(alice, source=rules.COLOR, pre_queue_workflow_id="uncertain")
    rules.predict_image(api, alice.secret, rules.halves(RED, BLUE))
    rules.predict_image(api, alice.secret, rules.solid(RED))
    [cap] = Capture.objects.filter(collector=c)
    assert not cap.pre_queue_pending  # decided at admission, no worker model run needed
    assert len(cap.output_json()["data"]["concepts"]) == 2  # the mixed picture
    assert counters.pending().get((c.pk, "filtered_inline:rule"), 0) == 1


@pytest.mark.worker
def test_worker_post_queue_margin_filters_the_confident_and_ingests_the_uncertain(
    api, alice, make_collector, celery_workers
):
    celery_workers.start(pool="solo", concurrency=1)
    rules.operator_model(alice.app, "close-call", "margin-below", {"threshold": 0.2})
    rules.source_then(alice.app, "close-calls", "close-call")
    c = make_collector(alice, source=rules.COLOR, post_queue_workflow_id="close-calls")
    rules.predict_image(api, alice.secret, rules.solid(BLUE))
    rules.predict_image(api, alice.secret, rules.halves(RED, BLUE))
    sure, unsure = Capture.objects.filter(collector=c).order_by("created_at")
    states = wait_terminal([sure.pk, unsure.pk], timeout=60)
    sure.refresh_from_db()
    assert states[str(sure.pk)] == CaptureState.FILTERED
    assert sure.filtered_by == "rule"
    assert sure.reason.startswith("post-queue output empty")
    assert states[str(unsure.pk)] == CaptureState.INGESTED
    [inp] = Input.objects.filter(app=alice.app)
    assert {x["id"] for x in inp.data["concepts"]} == {"red", "blue"}
