"""Collectors on the general image models: the product page's source model (its clarifai/main URL
and version id), inline and deferred pre-queue workflows, and the image-to-text post-queue
workflow (captions), from the REST prediction to the ingested input."""

from __future__ import annotations

import base64

from collectors_module.capture import counters
from collectors_module.capture.models import Capture, CaptureState
from collectors_module.capture.worker import process
from collectors_module.inference.runners.builtin import GENERAL_IMAGE_RECOGNITION_VERSION
from collectors_module.inputs.models import Input
from tests import photos

PAGE_SOURCE = {  # the product page's example source
    "model_user_id": "clarifai",
    "model_app_id": "main",
    "model_id": "general-image-recognition",
    "model_version_id": GENERAL_IMAGE_RECOGNITION_VERSION,
}
EMBEDDING = {
    "model_user_id": "builtin",
    "model_app_id": "main",
    "model_id": "general-image-embedding",
    "model_version_id": "7515629a02d5aa9c4a19081500e6b224",
}


def predict_image(api, secret: str, raw: bytes, source: dict) -> dict:
    path = (
        f"/v2/users/{source['model_user_id']}/apps/{source['model_app_id']}/models/"
        f"{source['model_id']}/versions/{source['model_version_id']}/outputs"
    )
    body = {"inputs": [{"data": {"image": {"base64": base64.b64encode(raw).decode()}}}]}
    r = api.post(path, body, key=secret)
    assert r["status"]["code"] == 10000, r
    return r


def captured(collector) -> list[Capture]:
    return list(Capture.objects.filter(collector=collector).order_by("created_at", "input_index"))


def _espresso_workflow(alice, *, with_classifier: bool) -> str:
    """Pre-queue workflow keeping espresso > 0.5; with the classifier as a node (a real model:
    deferred to the worker unless it is the collector's source) or operators only (inline)."""
    from clarifai_grpc.grpc.api import resources_pb2

    from collectors_module.core.protojson import from_dict
    from collectors_module.inference.services import model_create
    from collectors_module.workflows.services import workflow_create

    pb = resources_pb2.Model(id="espresso-only", model_type_id="concept-thresholder")
    pb.output_info.params.update(
        {"concept_threshold_type": "GREATER_THAN", "filter_other_concepts": True}
    )
    pb.output_info.data.concepts.add(id=photos.ESPRESSO, value=0.5)
    model_create(app=alice.app, model_pb=pb)
    nodes = [{"id": "espresso", "model": {"id": "espresso-only"}}]
    if with_classifier:
        general = {
            "id": "general-image-recognition",
            "user_id": "builtin",
            "app_id": "main",
            "model_version": {"id": GENERAL_IMAGE_RECOGNITION_VERSION},
        }
        nodes = [{"id": "general", "model": general}, {**nodes[0], "node_inputs": [{"node_id": "general"}]}]  # fmt: skip
    wf_id = "espresso-deferred" if with_classifier else "espresso-inline"
    workflow_create(
        app=alice.app,
        workflow_pb=from_dict({"id": wf_id, "nodes": nodes}, resources_pb2.Workflow),
    )
    return wf_id


def test_the_page_source_with_an_inline_pre_queue_workflow(api, alice, make_collector):
    c = make_collector(
        alice,
        source=PAGE_SOURCE,
        sample=0,
        pre_queue_workflow_id=_espresso_workflow(alice, with_classifier=False),
    )
    predict_image(api, alice.secret, photos.photo("coffee"), PAGE_SOURCE)
    predict_image(api, alice.secret, photos.photo("chelsea"), PAGE_SOURCE)
    [cap] = captured(c)  # the cat was filtered at admission, on the prediction's own output
    assert not cap.pre_queue_pending
    assert cap.output_json()["data"]["concepts"][0]["id"] == photos.ESPRESSO
    assert counters.pending().get((c.pk, "filtered_inline:espresso"), 0) == 1
    assert process(cap.pk) == CaptureState.INGESTED
    inp = Input.objects.get(app=alice.app)
    assert inp.data["metadata"]["collector"]["source_model"] == (
        "clarifai/main/general-image-recognition"
    )


def test_a_pre_queue_workflow_needing_the_classifier_is_deferred_to_the_worker(
    api, alice, make_collector
):
    c = make_collector(
        alice,
        source=EMBEDDING,
        sample=0,
        pre_queue_workflow_id=_espresso_workflow(alice, with_classifier=True),
    )
    predict_image(api, alice.secret, photos.photo("coffee"), EMBEDDING)
    predict_image(api, alice.secret, photos.photo("chelsea"), EMBEDDING)
    coffee, cat = captured(c)
    assert coffee.pre_queue_pending
    assert cat.pre_queue_pending
    assert len(coffee.output_json()["data"]["embeddings"][0]["vector"]) == 1280
    assert process(coffee.pk) == CaptureState.INGESTED
    assert process(cat.pk) == CaptureState.FILTERED
    cat.refresh_from_db()
    assert cat.filtered_by == "espresso"
    assert Input.objects.filter(app=alice.app).count() == 1


def test_the_product_page_example_captures_and_captions(api, alice, make_collector):
    """The page's example: a random-sample workflow with keep_fraction 1 before the queue, the
    builder's image-to-text template after it, the page's source model and version id."""
    from clarifai_grpc.grpc.api import resources_pb2

    from collectors_module.core.protojson import from_dict
    from collectors_module.inference.services import model_create
    from collectors_module.workflows.services import workflow_create, workflow_create_from_recipe

    pb = resources_pb2.Model(id="sampler", model_type_id="random-sample")
    pb.output_info.params.update({"keep_fraction": 1.0})
    model_create(app=alice.app, model_pb=pb)
    workflow_create(
        app=alice.app,
        workflow_pb=from_dict(
            {"id": "random-sample", "nodes": [{"id": "sample", "model": {"id": "sampler"}}]},
            resources_pb2.Workflow,
        ),
    )
    workflow_create_from_recipe(app=alice.app, recipe_id="image-to-text", workflow_id="captions")
    c = make_collector(
        alice,
        source=PAGE_SOURCE,
        sample=0,
        pre_queue_workflow_id="random-sample",
        post_queue_workflow_id="captions",
    )
    predict_image(api, alice.secret, photos.photo("coffee"), PAGE_SOURCE)
    [cap] = captured(c)
    assert process(cap.pk) == CaptureState.INGESTED
    inp = Input.objects.get(app=alice.app)
    assert inp.text == "a photo of an espresso"
    assert inp.image  # the original photo is kept
    [annotation] = inp.annotations  # collect_outputs: the source's concepts
    assert annotation["model_id"] == "general-image-recognition"
    assert annotation["model_version_id"] == GENERAL_IMAGE_RECOGNITION_VERSION
    assert annotation["data"]["concepts"][0]["id"] == photos.ESPRESSO
