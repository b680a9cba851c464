"""The Workflow Builder and knowledge-graph pages, through Django's test client (real database)."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from collectors_module.workflows.models import ConceptRelation, Workflow

from .conftest import solid, text_image

PASSWORD = "pw-for-tests-123"
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def web(alice) -> Client:
    client = Client()
    assert client.login(username="alice", password=PASSWORD)
    return client


def url(app, *parts: str) -> str:
    return "/apps/" + "/".join([app.public_id, *parts]) + "/"


def node_ids(workflow_id: str, app) -> list[str]:
    wf = Workflow.objects.get(app=app, public_id=workflow_id)
    return list(wf.nodes.order_by("position").values_list("node_id", flat=True))


def test_builder_lists_workflows_and_recipes_and_sidebar_links(web, alice):
    page = web.get(url(alice.app, "workflows"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "No workflows yet" in html
    for recipe in ("random-sample", "metadata-filter", "uncertain-predictions", "image-to-text"):
        assert f'value="{recipe}"' in html
    assert 'href="/apps/app1/workflows/"' in html  # sidebar: Workflow Builder
    assert 'href="/apps/app1/knowledge-graph/"' in html  # sidebar: Knowledge graph
    assert '<label for="new-workflow_id">Workflow ID</label>' in html


def test_create_from_template_makes_the_workflow_and_its_operator_models(web, alice):
    response = web.post(
        url(alice.app, "workflows"), {"workflow_id": "sampler", "recipe": "random-sample"}
    )
    assert response.status_code == 302
    assert response["Location"] == url(alice.app, "workflows", "sampler")
    assert node_ids("sampler", alice.app) == ["sample"]
    page = web.get(response["Location"]).content.decode()
    assert 'id="node-sample"' in page
    assert "keep_fraction=0.1" in page
    assert "<svg" in page
    assert "Random sample" in page
    listing = web.get(url(alice.app, "workflows")).content.decode()
    assert 'href="/apps/app1/workflows/sampler/"' in listing
    # The same id again is refused next to the field, nothing changes.
    again = web.post(
        url(alice.app, "workflows"), {"workflow_id": "sampler", "recipe": "image-to-text"}
    )
    assert again.status_code == 400
    assert "already exists" in again.content.decode()
    assert node_ids("sampler", alice.app) == ["sample"]


def test_node_form_fields_are_generated_from_the_model_type(web, alice):
    web.post(url(alice.app, "workflows"), {"workflow_id": "wf", "recipe": ""})
    page = web.get(url(alice.app, "workflows", "wf"), {"choice": "op:concept-thresholder"})
    html = page.content.decode()
    assert page.status_code == 200
    # Enum -> select with the ValueComparator options; boolean -> checkbox; concepts -> textarea.
    assert re.search(
        r'<select name="p_concept_threshold_type"[^>]*id="nf-p_concept_threshold_type"', html
    )
    assert 'value="GREATER_THAN_OR_EQUAL"' in html
    assert 'value="EQUAL"' in html
    assert re.search(r'<input type="checkbox" name="p_filter_other_concepts"', html)
    assert re.search(r'<textarea name="p_concepts"', html)
    assert '<label for="nf-p_concepts">concepts</label>' in html
    assert "Per-concept thresholds" in html  # the description is the help text
    # Range -> number input with min / max / step.
    html = web.get(
        url(alice.app, "workflows", "wf"), {"choice": "op:random-sample"}
    ).content.decode()
    field = re.search(r'<input type="number" name="p_keep_fraction"[^>]*>', html).group(0)
    assert 'min="0"' in field
    assert 'max="1"' in field
    assert 'step="0.01"' in field
    assert 'value="1"' in field  # the default
    # The htmx request for the chosen model gets only the add-node panel.
    partial = web.get(
        url(alice.app, "workflows", "wf"),
        {"choice": "builtin:color-recognition"},
        HTTP_HX_TARGET="add-node",
        **HTMX,
    ).content.decode()
    assert partial.startswith('<div id="add-node"')
    assert "<html" not in partial
    assert 'name="p_max_concepts"' in partial


def test_add_nodes_save_and_the_operator_model_is_made_with_the_params(web, alice):
    web.post(url(alice.app, "workflows"), {"workflow_id": "chain", "recipe": ""})
    add = url(alice.app, "workflows", "chain", "nodes")
    response = web.post(
        add, {"choice": "builtin:color-recognition", "node_id": "colors", "p_max_concepts": "5"}
    )
    assert response.status_code == 302
    response = web.post(
        add,
        {
            "choice": "op:concept-thresholder",
            "node_id": "red-only",
            "inputs": ["colors"],
            "p_concepts": "red: 0.4",
            "p_concept_threshold_type": "GREATER_THAN_OR_EQUAL",
            "p_filter_other_concepts": "on",
        },
        **HTMX,
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert html.startswith('<section id="editor"')  # the editor partial
    assert 'id="node-red-only"' in html
    assert "Not saved yet" in html
    assert not Workflow.objects.filter(public_id="chain").exists()  # a draft until saved
    response = web.post(url(alice.app, "workflows", "chain", "save"))
    assert response.status_code == 302
    wf = Workflow.objects.get(app=alice.app, public_id="chain")
    nodes = list(wf.nodes.order_by("position"))
    assert [n.node_id for n in nodes] == ["colors", "red-only"]
    assert nodes[0].output_info_override == {"params": {"max_concepts": 5, "min_value": 0.0}}
    assert nodes[1].node_inputs == ["colors"]
    op = nodes[1].model_version
    assert op.model.public_id == "chain-red-only"
    assert op.model.model_type_id == "concept-thresholder"
    assert op.output_info["params"] == {
        "concept_threshold_type": "GREATER_THAN_OR_EQUAL",
        "filter_other_concepts": True,
    }
    assert op.output_info["data"]["concepts"][0]["id"] == "red"
    assert op.output_info["data"]["concepts"][0]["value"] == pytest.approx(0.4)
    # The graph: an arrow from colors to red-only, boxes with type labels.
    page = web.get(url(alice.app, "workflows", "chain")).content.decode()
    assert page.count("marker-end=") == 2  # input -> colors, colors -> red-only
    assert "Concept thresholder" in page
    assert "Visual classifier" in page


def test_bad_params_are_shown_next_to_the_field_and_nothing_is_added(web, alice):
    web.post(url(alice.app, "workflows"), {"workflow_id": "bad", "recipe": ""})
    add = url(alice.app, "workflows", "bad", "nodes")
    response = web.post(
        add, {"choice": "op:random-sample", "node_id": "s", "p_keep_fraction": "1.5"}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert re.search(
        r'id="nf-p_keep_fraction_error"[^>]*>keep_fraction: enter a number from 0 to 1', html
    )
    # Valid JSON of the wrong shape: the operator itself refuses it, next to the field.
    response = web.post(
        add,
        {
            "choice": "op:metadata-filter",
            "node_id": "m",
            "p_conditions": '[{"key": "x", "op": "bogus"}]',
        },
        **HTMX,
    )
    assert response.status_code == 200  # htmx swaps only 2xx: errors come in a 200 partial
    html = response.content.decode()
    assert re.search(r'id="nf-p_conditions_error"[^>]*>conditions\[0\]\.op must be one of', html)
    page = web.get(url(alice.app, "workflows", "bad")).content.decode()
    assert 'id="node-s"' not in page
    assert 'id="node-m"' not in page


def test_a_save_error_is_shown_next_to_its_node(web, alice, make_operator):
    """The model of a draft node disappears before saving: the service's error names the node."""
    make_operator(alice.app, "my-sampler", "random-sample", {"keep_fraction": 0.5})
    web.post(url(alice.app, "workflows"), {"workflow_id": "stale", "recipe": ""})
    add = url(alice.app, "workflows", "stale", "nodes")
    web.post(add, {"choice": "op:random-sample", "node_id": "first", "p_keep_fraction": "1"})
    web.post(
        add,
        {
            "choice": "app:my-sampler",
            "node_id": "mine",
            "inputs": ["first"],
            "p_keep_fraction": "0.5",
        },
    )
    from collectors_module.inference.models import Model

    Model.objects.filter(app=alice.app, public_id="my-sampler").delete()
    response = web.post(url(alice.app, "workflows", "stale", "save"), **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    error = re.search(r'<li class="wf-node has-error" id="node-mine">.*?</li>', html, re.S).group(0)
    assert "does not exist" in error
    assert 'id="node-mine-error"' in error
    assert 'id="node-first-error"' not in html
    # All or nothing: no workflow, and the operator model of 'first' was rolled back.
    assert not Workflow.objects.filter(public_id="stale").exists()
    assert not Model.objects.filter(app=alice.app, public_id="stale-first").exists()


def test_remove_node_refuses_a_node_others_read_then_removes(web, alice):
    web.post(
        url(alice.app, "workflows"), {"workflow_id": "kg-map", "recipe": "knowledge-graph-mapping"}
    )
    remove = url(alice.app, "workflows", "kg-map", "nodes", "mapper", "remove")
    response = web.post(remove, **HTMX)
    assert response.status_code == 200
    assert "Node confident reads this node" in response.content.decode()
    response = web.post(
        url(alice.app, "workflows", "kg-map", "nodes", "confident", "remove"), **HTMX
    )
    assert response.status_code == 200
    assert 'id="node-confident"' not in response.content.decode()
    assert web.post(remove).status_code == 302
    assert node_ids("kg-map", alice.app) == ["source", "mapper", "confident"]  # not saved yet
    web.post(url(alice.app, "workflows", "kg-map", "save"))
    assert node_ids("kg-map", alice.app) == ["source"]


def test_try_it_shows_every_node_output(web, alice):
    web.post(
        url(alice.app, "workflows"), {"workflow_id": "conf", "recipe": "confident-predictions"}
    )
    from django.core.files.uploadedfile import SimpleUploadedFile

    image = SimpleUploadedFile("red.png", solid((230, 20, 20)), content_type="image/png")
    response = web.post(url(alice.app, "workflows", "conf", "try"), {"image": image}, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.startswith('<div id="try-results"')
    assert 'id="out-source"' in html
    assert 'id="out-confident"' in html
    assert re.search(
        r'<span class="wf-bar-name">red</span><meter min="0" max="1" value="(0\.9|1\.0)', html
    )
    assert "<strong>Kept</strong>" in html
    assert " ms" in html
    # Text for an image model: the node's error is shown, the input is not kept.
    response = web.post(url(alice.app, "workflows", "conf", "try"), {"text": "hello"}, **HTMX)
    html = response.content.decode()
    assert 'id="out-source"' in html
    assert '<span class="badge err">error' in html
    assert "<strong>Filtered out</strong>" in html
    # Nothing chosen: a message, no run.
    response = web.post(url(alice.app, "workflows", "conf", "try"), {}, **HTMX)
    assert response.status_code == 200
    assert "Choose an image or type some text." in response.content.decode()


def test_try_it_on_image_to_text_shows_the_read_text(web, alice):
    web.post(url(alice.app, "workflows"), {"workflow_id": "ocr", "recipe": "image-to-text"})
    from django.core.files.uploadedfile import SimpleUploadedFile

    image = SimpleUploadedFile("t.png", text_image("HELLO 42"), content_type="image/png")
    response = web.post(url(alice.app, "workflows", "ocr", "try"), {"image": image})
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html  # without htmx: the whole editor page with the results
    text = re.search(r'<pre class="wf-text"[^>]*>(.*?)</pre>', html, re.S).group(1)
    assert "HELLO" in text.upper()
    assert "42" in text


def test_knowledge_graph_add_list_delete(web, alice):
    page = url(alice.app, "knowledge-graph")
    assert "No relations yet" in web.get(page).content.decode()
    response = web.post(page, {"subject": "honey", "predicate": "hyponym", "object": "food"})
    assert response.status_code == 302
    assert response["Location"] == page
    response = web.post(
        page,
        {
            "subject": "red",
            "predicate": "synonym",
            "object": "rouge",
            "object_app_id": "main",
            "knowledge_graph_id": "colors",
        },
        **HTMX,
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert html.startswith('<div id="kg-panel"')
    assert "Relations (2)" in html
    assert "(app main)" in html
    assert ">colors<" in html
    # A bad value is refused next to its field.
    response = web.post(page, {"subject": "x", "predicate": "synonym", "object": "x"}, **HTMX)
    assert response.status_code == 200
    assert re.search(
        r'id="kg-object_error"[^>]*>A concept cannot be related to itself',
        response.content.decode(),
    )
    rel = ConceptRelation.objects.get(app=alice.app, subject_concept_id="honey")
    delete = url(alice.app, "knowledge-graph", rel.public_id, "delete")
    assert f'hx-post="{delete}"' in html
    assert "hx-confirm=" in html
    response = web.post(delete, **HTMX)
    assert response.status_code == 200
    assert "Relations (1)" in response.content.decode()
    assert not ConceptRelation.objects.filter(pk=rel.pk).exists()
    assert ConceptRelation.objects.filter(app=alice.app).count() == 1


def test_another_users_app_is_404_everywhere(web, alice, bob):
    from collectors_module.workflows.services import relation_create, workflow_create_from_recipe

    workflow_create_from_recipe(app=bob.app, recipe_id="random-sample", workflow_id="bobs")
    rel = relation_create(
        app=bob.app, subject_concept_id="a", object_concept_id="b", predicate="synonym"
    )
    for path in (
        url(bob.app, "workflows"),
        url(bob.app, "workflows", "bobs"),
        url(bob.app, "knowledge-graph"),
    ):
        assert web.get(path).status_code == 404
    for path in (
        url(bob.app, "workflows", "bobs", "save"),
        url(bob.app, "workflows", "bobs", "delete"),
        url(bob.app, "workflows", "bobs", "nodes", "sample", "remove"),
        url(bob.app, "knowledge-graph", rel.public_id, "delete"),
    ):
        assert web.post(path).status_code == 404
    assert Workflow.objects.filter(app=bob.app, public_id="bobs").exists()
    assert ConceptRelation.objects.filter(pk=rel.pk).exists()
    # A workflow id alice's app does not have is 404 too.
    assert web.get(url(alice.app, "workflows", "bobs")).status_code == 404


def test_posts_without_csrf_token_are_refused(alice):
    client = Client(enforce_csrf_checks=True)
    assert client.login(username="alice", password=PASSWORD)
    response = client.post(
        url(alice.app, "workflows"), {"workflow_id": "x", "recipe": "random-sample"}
    )
    assert response.status_code == 403
    response = client.post(
        url(alice.app, "knowledge-graph"), {"subject": "a", "predicate": "synonym", "object": "b"}
    )
    assert response.status_code == 403
    assert not Workflow.objects.filter(app=alice.app).exists()
    assert not ConceptRelation.objects.filter(app=alice.app).exists()


def test_delete_workflow(web, alice):
    web.post(url(alice.app, "workflows"), {"workflow_id": "gone", "recipe": "random-sample"})
    response = web.post(url(alice.app, "workflows", "gone", "delete"))
    assert response.status_code == 302
    assert not Workflow.objects.filter(app=alice.app, public_id="gone").exists()


def test_hostile_node_form_values_are_refused_without_a_500(web, alice):
    web.post(url(alice.app, "workflows"), {"workflow_id": "odd", "recipe": ""})
    add = url(alice.app, "workflows", "odd", "nodes")
    deep = "[" * 5000 + "]" * 5000
    response = web.post(add, {"choice": "op:metadata-filter", "node_id": "m", "p_conditions": deep})
    assert response.status_code == 400
    assert "nested too deeply" in response.content.decode()
    response = web.post(
        add,
        {"choice": "op:random-sample", "node_id": "s", "p_seed": "a\x00b", "p_keep_fraction": "1"},
    )
    assert response.status_code == 400
    for choice in ("op:nope", "app:../../x", "builtin:missing", "", "x" * 500):
        response = web.post(add, {"choice": choice, "node_id": "n"})
        assert response.status_code == 400
        assert "Choose a model or an operator" in response.content.decode()
    assert web.get(url(alice.app, "workflows", "odd"), {"choice": "app:\x00"}).status_code == 200
    assert web.get(url(alice.app, "workflows", "bad id!")).status_code == 404


def test_try_it_metadata_feeds_the_metadata_filter_template(web, alice):
    web.post(url(alice.app, "workflows"), {"workflow_id": "meta", "recipe": "metadata-filter"})
    try_url = url(alice.app, "workflows", "meta", "try")
    kept = web.post(try_url, {"text": "hi", "metadata": '{"source": "mobile"}'}, **HTMX)
    assert "<strong>Kept</strong>" in kept.content.decode()
    dropped = web.post(try_url, {"text": "hi", "metadata": '{"source": "web"}'}, **HTMX)
    assert "Filtered out</strong> by node metadata" in dropped.content.decode()
    bad = web.post(try_url, {"text": "hi", "metadata": "[1]"}, **HTMX)
    assert "Write a JSON object" in bad.content.decode()
    deep = web.post(try_url, {"text": "hi", "metadata": "[" * 3000 + "]" * 3000}, **HTMX)
    assert "Not valid JSON." in deep.content.decode()


def test_mapper_operator_form_and_add(web, alice):
    web.post(url(alice.app, "workflows"), {"workflow_id": "map", "recipe": ""})
    page = web.get(url(alice.app, "workflows", "map"), {"choice": "op:concept-hyponym-mapper"})
    assert re.search(
        r'<input type="text" name="p_knowledge_graph_id"[^>]*placeholder="\(all relations\)"',
        page.content.decode(),
    )
    add = url(alice.app, "workflows", "map", "nodes")
    web.post(add, {"choice": "builtin:color-recognition", "node_id": "colors"})
    response = web.post(
        add,
        {
            "choice": "op:concept-hyponym-mapper",
            "node_id": "narrow",
            "inputs": ["colors"],
            "p_knowledge_graph_id": "kg1",
        },
    )
    assert response.status_code == 302
    assert web.post(url(alice.app, "workflows", "map", "save")).status_code == 302
    node = Workflow.objects.get(app=alice.app, public_id="map").nodes.get(node_id="narrow")
    assert node.model_version.output_info["params"] == {"knowledge_graph_id": "kg1"}
