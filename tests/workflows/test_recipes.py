"""The builder's ready-made workflows: each one is created and behaves as its title says."""

from __future__ import annotations

import io

import pytest
from clarifai_grpc.grpc.api import resources_pb2
from PIL import Image

from collectors_module.core.errors import SC, ApiError
from collectors_module.inference.models import Model
from collectors_module.workflows import executor, selectors, services
from collectors_module.workflows.recipes import RECIPES

from .conftest import solid, text_image


def image(raw: bytes, metadata: dict | None = None) -> resources_pb2.Data:
    d = resources_pb2.Data(image=resources_pb2.Image(base64=raw))
    if metadata:
        d.metadata.update(metadata)
    return d


def quadrants() -> bytes:
    img = Image.new("RGB", (64, 64), "red")
    for box, color in (
        ((32, 0, 64, 32), "blue"),
        ((0, 32, 32, 64), "green"),
        ((32, 32, 64, 64), "yellow"),
    ):
        img.paste(color, box)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def make(alice, recipe_id: str, **kw):
    services.workflow_create_from_recipe(
        app=alice.app, recipe_id=recipe_id, workflow_id=recipe_id, **kw
    )
    return selectors.workflow_for_app(alice.app, recipe_id)


def keeps(workflow, datas, **kw) -> list[bool]:
    return [r.keep for r in executor.run_workflow(workflow, datas, **kw)]


def test_every_recipe_can_be_created(alice):
    for recipe in RECIPES:
        wf = make(alice, recipe.id)
        assert [n.node_id for n in wf.nodes.all()] == [n.node_id for n in recipe.nodes]


def test_random_sample_recipe_keeps_about_a_tenth(alice):
    wf = make(alice, "random-sample")
    kept = sum(keeps(wf, [image(solid("red"))] * 32, seed_keys=[f"c{i}" for i in range(32)]))
    kept += sum(keeps(wf, [image(solid("red"))] * 32, seed_keys=[f"d{i}" for i in range(32)]))
    assert 1 <= kept <= 20


def test_metadata_filter_recipe(alice):
    wf = make(alice, "metadata-filter")
    assert keeps(
        wf,
        [
            image(solid("red"), {"source": "mobile"}),
            image(solid("red"), {"source": "web"}),
            image(solid("red")),
        ],
    ) == [
        True,
        False,
        False,
    ]


def test_uncertain_and_confident_recipes(alice):
    uncertain, confident = (
        make(alice, "uncertain-predictions"),
        make(alice, "confident-predictions"),
    )
    mixed, red = image(quadrants()), image(solid("red"))
    assert keeps(uncertain, [mixed, red]) == [True, False]
    assert keeps(confident, [mixed, red]) == [False, True]


def test_concepts_above_threshold_recipe(alice):
    wf = make(alice, "concepts-above-threshold")
    assert keeps(wf, [image(solid("red")), image(solid("blue"))]) == [True, False]


def test_knowledge_graph_recipe_maps_public_concepts_to_custom_ones(
    alice, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.relation_create(
            app=alice.app,
            subject_concept_id="my-red",
            object_concept_id="red",
            predicate="synonym",
            object_app_id="main",
        )
    wf = make(alice, "knowledge-graph-mapping")
    red, blue = executor.run_workflow(wf, [image(solid("red")), image(solid("blue"))])
    assert [c.id for c in red.output("mapper").data.concepts] == ["my-red"]
    assert red.keep
    assert (blue.keep, blue.filtered_by) == (False, "mapper")


def test_image_to_text_recipe(alice):
    wf = make(alice, "image-to-text")
    [run] = executor.run_workflow(wf, [image(text_image("RECIPE"))])
    caption = run.output("caption").data.text.raw
    assert "RECIPE" in caption.upper()
    assert caption.startswith(("a photo of", "possibly", "an image with the text"))


def test_recipe_uses_the_given_source_model(api, alice):
    r = api.post(
        "/v2/users/alice/apps/app1/models",
        {
            "model": {
                "id": "my-colors",
                "model_version": {"metadata": {"runner": "builtin:color-recognition"}},
            }
        },
        key=alice.secret,
    )
    assert r["status"]["code"] == 10000, r
    mine = Model.objects.get(app=alice.app, public_id="my-colors").latest_version()
    wf = make(alice, "confident-predictions", source_model_version=mine)
    assert wf.nodes.all()[0].model_version == mine
    assert executor.is_inline(wf, mine)


def test_recipe_errors_leave_nothing_behind(alice):
    with pytest.raises(ApiError) as exc:
        services.workflow_create_from_recipe(app=alice.app, recipe_id="nope", workflow_id="w")
    assert exc.value.code == SC.CONN_DOES_NOT_EXIST
    make(alice, "random-sample")
    with pytest.raises(ApiError) as exc:
        make(alice, "random-sample")
    assert exc.value.code == SC.WORKFLOW_DUPLICATE
    services.workflow_delete(app=alice.app, workflow_id="random-sample")
    again = make(alice, "random-sample")  # its operator model "random-sample-sample" is still there
    assert again.nodes.all()[0].model_version.model.public_id == "random-sample-sample-2"


def test_recipe_with_an_invisible_source_creates_nothing(api, alice, bob):
    r = api.post(
        "/v2/users/bob/apps/bobapp/models",
        {
            "model": {
                "id": "bobs",
                "model_version": {"metadata": {"runner": "builtin:color-recognition"}},
            }
        },
        key=bob.secret,
    )
    assert r["status"]["code"] == 10000, r
    bobs = Model.objects.get(public_id="bobs").latest_version()
    with pytest.raises(ApiError) as exc:
        make(alice, "confident-predictions", source_model_version=bobs)
    assert exc.value.code == SC.WORKFLOW_INVALID_GRAPH
    assert exc.value.field == "source"
    assert not Model.objects.filter(app=alice.app).exists()  # the operator model was rolled back
