"""Workflow Builder: a template asks for its key parameter, a node's parameters are edited in
place (validated next to each field), and removing a node removes the operator model it made."""

from __future__ import annotations

import pytest

from collectors_module.inference.models import Model
from collectors_module.workflows import executor, selectors

from .test_builder_views import HTMX, node_ids, url, web  # noqa: F401  (the `web` fixture)

pytestmark = pytest.mark.django_db


def params_of(app, workflow_id: str, node_id: str) -> dict:
    plan = executor.build_plan(selectors.workflow_for_app(app, workflow_id))
    return next(n.params for n in plan.nodes if n.node_id == node_id)


def test_a_template_asks_for_its_key_parameter(web, alice):  # noqa: F811
    field = web.get(
        url(alice.app, "workflows") + "?recipe=random-sample", HTTP_HX_TARGET="key-param", **HTMX
    )
    html = field.content.decode()
    assert html.startswith('<div id="key-param">')
    assert '<label for="new-key_value">sample.keep_fraction</label>' in html
    assert ">0.1</textarea>" in html
    bad = web.post(
        url(alice.app, "workflows"),
        {"workflow_id": "s", "recipe": "random-sample", "key_value": "2"},
    )
    assert bad.status_code == 400
    assert "keep_fraction: enter a number from 0 to 1" in bad.content.decode()
    assert not Model.objects.filter(app=alice.app, public_id="s-sample").exists()
    ok = web.post(
        url(alice.app, "workflows"),
        {"workflow_id": "s", "recipe": "random-sample", "key_value": "0.25"},
    )
    assert ok.status_code == 302
    assert params_of(alice.app, "s", "sample")["keep_fraction"] == 0.25
    web.post(
        url(alice.app, "workflows"),
        {"workflow_id": "q", "recipe": "class-balanced", "key_value": "7"},
    )
    assert params_of(alice.app, "q", "quota")["max_per_window"] == 7


def test_edit_a_node_in_place_then_save(web, alice):  # noqa: F811
    web.post(url(alice.app, "workflows"), {"workflow_id": "s", "recipe": "random-sample"})
    edit = url(alice.app, "workflows", "s", "nodes", "sample", "edit")
    form = web.get(edit, **HTMX).content.decode()
    assert 'id="node-sample-edit"' in form
    assert 'name="p_keep_fraction"' in form
    assert 'value="0.1"' in form
    bad = web.post(edit, {"p_keep_fraction": "1.5"}, **HTMX).content.decode()
    assert 'id="edit-sample-p_keep_fraction_error"' in bad
    assert "keep_fraction: enter a number from 0 to 1" in bad
    assert params_of(alice.app, "s", "sample")["keep_fraction"] == 0.1
    good = web.post(edit, {"p_keep_fraction": "0.75", "p_seed": "abc"}, **HTMX).content.decode()
    assert "keep_fraction=0.75" in good
    assert "Unsaved changes" in good
    assert params_of(alice.app, "s", "sample")["keep_fraction"] == 0.1  # not saved yet
    web.post(url(alice.app, "workflows", "s", "save"))
    assert params_of(alice.app, "s", "sample") == {"keep_fraction": 0.75, "seed": "abc"}
    assert (
        Model.objects.filter(app=alice.app, public_id__startswith="s-").count() == 1
    )  # no new model


def test_removing_a_node_removes_the_operator_model_it_made_when_unused(web, alice):  # noqa: F811
    web.post(
        url(alice.app, "workflows"), {"workflow_id": "kg", "recipe": "knowledge-graph-mapping"}
    )
    web.post(url(alice.app, "workflows"), {"workflow_id": "other", "recipe": ""})
    # Another workflow uses kg-mapper too: it must stay.
    web.post(
        url(alice.app, "workflows", "other", "nodes"),
        {"choice": "app:kg-mapper", "node_id": "m", "p_knowledge_graph_id": ""},
    )
    web.post(url(alice.app, "workflows", "other", "save"))
    for node in ("confident", "mapper"):
        web.post(url(alice.app, "workflows", "kg", "nodes", node, "remove"))
    web.post(url(alice.app, "workflows", "kg", "save"))
    assert node_ids("kg", alice.app) == ["source"]
    assert not Model.objects.filter(app=alice.app, public_id="kg-confident").exists()
    assert Model.objects.filter(app=alice.app, public_id="kg-mapper").exists()
