"""Class-balanced quotas: at most N captures per concept per window, counted in Redis and shared
by every process (two real worker processes here), dropped as `class_quota:<concept>`."""

from __future__ import annotations

import pytest
from clarifai_grpc.grpc.api import resources_pb2

from collectors_module.capture import counters, quotas
from collectors_module.capture.models import Capture, CaptureState
from collectors_module.inputs.models import Input
from collectors_module.workflows.operators import quota
from tests.capture.test_pipeline import wait_terminal
from tests.support import rules

pytestmark = pytest.mark.django_db(transaction=True)

RED, BLUE = (220, 20, 30), (20, 40, 220)


def _quota_workflow(app, n: int, **params) -> str:
    rules.operator_model(app, "balance", "class-quota", {"max_per_window": n, **params})
    rules.source_then(app, "balanced", "balance")
    return "balanced"


def test_counted_concepts_top_or_each_above_the_threshold():
    d = resources_pb2.Data(
        concepts=[
            resources_pb2.Concept(id="a", value=0.3),
            resources_pb2.Concept(id="b", value=0.6),
        ]
    )
    assert quota.counted(d, quota.parse({"max_per_window": 1})) == ["b"]
    assert quota.counted(
        d, quota.parse({"max_per_window": 1, "per": "above", "threshold": 0.25})
    ) == ["b", "a"]
    assert quota.counted(resources_pb2.Data(), quota.parse({"max_per_window": 1})) == []


def test_inline_quota_keeps_n_per_concept_and_lets_the_rare_class_through(
    api, alice, make_collector
):
    quotas.reset()
    wf = _quota_workflow(alice.app, 2)
    c = make_collector(alice, source=rules.COLOR, pre_queue_workflow_id=wf)
    for _ in range(5):
        rules.predict_image(api, alice.secret, rules.solid(RED))
    rules.predict_image(api, alice.secret, rules.solid(BLUE))
    caps = list(Capture.objects.filter(collector=c))
    tops = sorted(cap.output_json()["data"]["concepts"][0]["id"] for cap in caps)
    assert tops == ["blue", "red", "red"]
    assert counters.pending().get((c.pk, "class_quota:red"), 0) == 3


def test_the_same_capture_is_counted_once():
    quotas.reset()
    cfg = quota.parse({"max_per_window": 1})
    first, again, other = quotas.Gate(991, "m1"), quotas.Gate(991, "m1"), quotas.Gate(991, "m2")
    assert first("n", cfg, ["red"]) == ""
    assert again("n", cfg, ["red"]) == ""  # a retried attempt of the same capture
    assert other("n", cfg, ["red"]) == "red"
    assert other.reason == "class_quota:red"
    peek = quotas.Gate(991, "m3", dry_run=True)
    assert peek("n", cfg, ["red"]) == "red"
    assert quotas.Gate(991, "m4", dry_run=True)("n", cfg, ["blue"]) == ""


@pytest.mark.worker
def test_two_worker_processes_share_the_quota(api, alice, make_collector, celery_workers):
    quotas.reset()
    celery_workers.start(pool="solo", concurrency=1)
    celery_workers.start(pool="solo", concurrency=1)
    wf = _quota_workflow(alice.app, 3, window="day")
    c = make_collector(alice, source=rules.COLOR, post_queue_workflow_id=wf)
    for _ in range(10):
        rules.predict_image(api, alice.secret, rules.solid(RED))
    for _ in range(2):
        rules.predict_image(api, alice.secret, rules.solid(BLUE))
    ids = list(Capture.objects.filter(collector=c).values_list("pk", flat=True))
    assert len(ids) == 12
    states = wait_terminal(ids, timeout=90)
    assert sorted(states.values()).count(CaptureState.INGESTED) == 5
    filtered = Capture.objects.filter(collector=c, state=CaptureState.FILTERED)
    assert filtered.count() == 7
    assert {f.reason.split(" ")[0] for f in filtered} == {"class_quota:red"}
    tops = sorted(i.data["concepts"][0]["id"] for i in Input.objects.filter(app=alice.app))
    assert tops == ["blue", "blue", "red", "red", "red"]
    hosts = {w.name for w in celery_workers.started}
    assert len(hosts) == 2
