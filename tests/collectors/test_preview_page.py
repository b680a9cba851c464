"""The create / update form's near-duplicate option and its preview panel (htmx)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from collectors_module.capture.models import Capture
from collectors_module.collectors.models import Collector
from tests.support import rules
from tests.support.modules import VERSION_ID, form_data

pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true"}
SOURCE = {
    "model_user_id": "alice",
    "model_app_id": "app1",
    "model_id": "colors",
    "model_version_id": VERSION_ID,
}


def _url(name, inst, *args):
    return reverse(f"collectors:{name}", args=["app1", inst.slug, *args])


def test_the_form_saves_the_near_duplicate_option(alice, alice_client, install, source_model):
    inst = install(alice)
    r = alice_client.post(
        _url("create", inst),
        form_data(alice, near_duplicate="on", near_duplicate_max_distance="6"),
    )
    assert r.status_code == 302, r.content.decode()[:2000]
    c = Collector.objects.get(public_id="c1")
    assert (c.near_duplicate, c.near_duplicate_max_distance) == (True, 6)
    page = alice_client.get(_url("update", inst, "c1")).content.decode()
    assert re.search(r'<input[^>]*name="near_duplicate"[^>]*checked', page)
    assert re.search(r'<input[^>]*name="near_duplicate_max_distance"[^>]*value="6"', page)
    bad = alice_client.post(
        _url("create", inst), form_data(alice, id="c2", near_duplicate_max_distance="40")
    )
    assert bad.status_code == 400
    assert "less than or equal to 11" in bad.content.decode()


def test_preview_panel_lists_recent_traffic_with_each_decision(
    api, alice, alice_client, install, source_model, make_collector
):
    inst = install(alice)
    empty = alice_client.post(_url("preview", inst), form_data(alice), headers=HX)
    assert "No captured inputs of this source model" in empty.content.decode()
    make_collector(alice, "everything", source=SOURCE)
    for raw in (rules.solid((220, 20, 30)), rules.halves((220, 20, 30), (20, 40, 220))):
        rules.predict_image(api, alice.secret, raw, SOURCE)
    assert Capture.objects.count() == 2
    rules.operator_model(alice.app, "unsure", "least-confidence", {"threshold": 0.3})
    rules.source_then(alice.app, "uncertain", "unsure")
    captures_before = Capture.objects.count()
    r = alice_client.post(
        _url("preview", inst),
        form_data(alice, id="new", pre_queue_random_sample="", pre_queue_workflow_id="uncertain"),
        headers=HX,
    )
    body = r.content.decode()
    assert r.status_code == 200
    assert "<strong>1 of 2</strong>" in body
    assert "pre_queue_workflow uncertain: filtered by rule" in body  # run with its model
    assert body.count('class="kept"') == 1
    assert Capture.objects.count() == captures_before  # nothing written
    assert not Collector.objects.filter(public_id="new").exists()


def test_workflow_dropdowns_say_where_each_runs_and_warn_of_empty_post_queue(
    alice, alice_client, install, source_model
):
    inst = install(alice)
    rules.operator_model(alice.app, "half", "random-sample", {"keep_fraction": 0.5})
    rules.workflow(alice.app, "sampler", [{"id": "s", "model": {"id": "half"}}])
    rules.operator_model(alice.app, "unsure", "least-confidence", {"threshold": 0.3})
    rules.source_then(alice.app, "uncertain", "unsure")
    rules.workflow(alice.app, "bare-unsure", [{"id": "u", "model": {"id": "unsure"}}])
    rules.workflow(
        alice.app,
        "read-text",
        [
            {"id": "colour", "model": rules.COLOR_NODE},
            {"id": "read", "model": rules.OCR_NODE, "node_inputs": [{"node_id": "colour"}]},
        ],
    )
    page = alice_client.get(_url("create", inst)).content.decode()
    pre = page.split('name="pre_queue_workflow_id"')[1].split("</select>")[0]
    post = page.split('name="post_queue_workflow_id"')[1].split("</select>")[0]
    assert ">sampler — inline (operators only)</option>" in pre
    assert ">uncertain — inline if its model is the source, else worker</option>" in pre
    assert ">read-text — worker (runs models)</option>" in pre
    assert ">read-text — worker</option>" in post
    assert ">bare-unsure — worker; can never output: every capture filtered</option>" in post
    assert ">uncertain — worker</option>" in post
    warnings = page.split('id="post-queue-warnings"')[1].split("</div>")[0]
    assert (
        "<strong>bare-unsure</strong>: node u (least-confidence) reads the original input"
        in warnings
    )
    assert "uncertain<" not in warnings
