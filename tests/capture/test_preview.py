"""The preview on recent traffic shows the decisions the live collector then makes on the same
inputs: per rule (class quota inline, near-duplicate, post-queue output), writing nothing."""

from __future__ import annotations

import types

import pytest

from collectors_module.capture import counters, quotas
from collectors_module.capture.models import Capture, CaptureState
from collectors_module.capture.worker import process
from collectors_module.collectors.services import collector_deactivate
from collectors_module.inputs.models import Input
from tests.capture.test_near_duplicates import store_image
from tests.support import rules

pytestmark = pytest.mark.django_db(transaction=True)

RED, BLUE, GREEN, YELLOW = (220, 20, 30), (20, 40, 220), (30, 200, 40), (240, 230, 30)


IMAGES = [
    ("red-1", rules.textured(RED, 1)),
    ("red-2", rules.textured(RED, 2)),
    ("red-3", rules.textured(RED, 3)),
    ("blue", rules.textured(BLUE, 4)),
    ("red-blue", rules.textured(RED, 5, share=0.6, other=BLUE)),
    ("green-yellow", rules.textured(GREEN, 6, share=0.6, other=YELLOW)),
]


@pytest.fixture
def second_app(alice, make_app):
    app2 = make_app(alice.user, "app2")
    rules.operator_model(app2, "two-per-colour", "class-quota", {"max_per_window": 2})
    rules.source_then(app2, "balanced", "two-per-colour")
    rules.operator_model(app2, "unsure", "least-confidence", {"threshold": 0.3})
    rules.source_then(app2, "uncertain", "unsure")
    store_image(app2, "blue-already", rules.textured(BLUE, 4))  # B's near-duplicate of "blue"
    return types.SimpleNamespace(app=app2, user=alice.user, key=alice.key, secret=alice.secret)


BODY = {
    "id": "b",
    "pre_queue_workflow_id": "balanced",
    "post_queue_workflow_id": "uncertain",
    "collector_source": {
        "api_post_model_outputs_collector_source": {
            **rules.COLOR,
            "post_inputs_key_id": "",
            "caller_user_id": "alice",
        }
    },
}


def test_preview_matches_the_live_collector(api, alice, second_app, make_collector):
    quotas.reset()
    everything = make_collector(alice, "everything", source=rules.COLOR)
    for _, raw in IMAGES:
        rules.predict_image(api, alice.secret, raw)
    for cap in Capture.objects.filter(collector=everything):
        assert process(cap.pk) == CaptureState.INGESTED  # the recent traffic, with its images

    body = {**BODY}
    src = body["collector_source"]["api_post_model_outputs_collector_source"]
    src["post_inputs_key_id"] = alice.key.public_id
    inputs_before = Input.objects.count()
    r = api.post(
        "/api/v2/users/alice/apps/app2/collectors/preview",
        {"collector": body, "near_duplicate": {"enabled": True, "max_distance": 4}},
        key=alice.secret,
    )
    assert r["status"]["code"] == 10000, r
    assert Input.objects.count() == inputs_before  # wrote nothing
    assert not Capture.objects.filter(collector__public_id="b").exists()
    items = r["items"]
    assert len(items) == len(IMAGES)
    preview = {name: item for (name, _), item in zip(IMAGES, items, strict=True)}
    assert preview["red-3"]["reason"] == "class_quota:red"
    assert preview["red-3"]["decided_by"] == "pre_queue_workflow"
    assert preview["blue"]["reason"].startswith("near_duplicate: matches input blue-already")
    assert preview["red-1"]["reason"].startswith("post-queue output empty")
    assert preview["green-yellow"]["kept"] is True
    assert [s["rule"] for s in preview["green-yellow"]["steps"]] == [
        "caller",
        "pre_queue_workflow",
        "near_duplicate",
        "post_queue_workflow",
    ]
    assert r["kept"] == 1

    # The live collector, saved with the same rules, on the same inputs in the same order.
    collector_deactivate(app=alice.app, collector_id="everything", discard_pending=False)
    live = make_collector(
        second_app,
        "b",
        source=rules.COLOR,
        pre_queue_workflow_id="balanced",
        post_queue_workflow_id="uncertain",
    )
    live.near_duplicate, live.near_duplicate_max_distance = True, 4
    live.save()
    for _, raw in IMAGES:
        rules.predict_image(api, alice.secret, raw)
    admitted = [name for name, _ in IMAGES if preview[name]["decided_by"] != "pre_queue_workflow"]
    caps = list(Capture.objects.filter(collector=live).order_by("created_at"))
    assert len(caps) == len(admitted)
    dropped_inline = sum(1 for it in items if it["decided_by"] == "pre_queue_workflow")
    assert counters.pending().get((live.pk, "class_quota:red"), 0) == dropped_inline
    for name, cap in zip(admitted, caps, strict=True):
        state = process(cap.pk)
        cap.refresh_from_db()
        assert (state == CaptureState.INGESTED) == preview[name]["kept"], name
        if not preview[name]["kept"]:
            assert cap.reason == preview[name]["reason"], name
