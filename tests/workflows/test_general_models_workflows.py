"""The general image models as workflow nodes: classify -> threshold, caption, knowledge graph."""

from __future__ import annotations

from collectors_module.inference.runners.builtin import GENERAL_IMAGE_RECOGNITION_VERSION
from tests import photos

from .conftest import image_input, node

BASE = "/v2/users/alice/apps/app1"
CAPTION_VERSION = "4ae20f0036badbe3fba16d8102372d73"


def general_node(node_id: str, inputs=()) -> dict:
    """The product page's source model, by its clarifai/main name and version id."""
    return node(
        node_id,
        "general-image-recognition",
        GENERAL_IMAGE_RECOGNITION_VERSION,
        inputs,
        model={"user_id": "clarifai", "app_id": "main"},
    )


def caption_node(node_id: str, inputs=()) -> dict:
    return node(
        node_id,
        "general-english-image-caption",
        CAPTION_VERSION,
        inputs,
        model={"user_id": "builtin", "app_id": "main"},
    )


def test_classify_threshold_and_caption_through_post_workflow_results(api, alice, make_operator):
    make_operator(
        alice.app,
        "espresso-only",
        "concept-thresholder",
        {"concept_threshold_type": "GREATER_THAN", "filter_other_concepts": True},
        concepts=[{"id": photos.ESPRESSO, "value": 0.5}],
    )
    r = api.post(
        f"{BASE}/workflows",
        {
            "workflows": [
                {
                    "id": "espresso",
                    "nodes": [
                        general_node("general"),
                        node("espresso", "espresso-only", inputs=["general"]),
                        caption_node("caption", inputs=["espresso"]),
                    ],
                }
            ]
        },
        key=alice.secret,
    )
    assert r["status"]["code"] == 10000, r
    r = api.post(
        f"{BASE}/workflows/espresso/results",
        {"inputs": [image_input(photos.photo("coffee")), image_input(photos.photo("chelsea"))]},
        key=alice.secret,
    )
    assert r["status"]["code"] == 10000, r
    coffee, cat = r["results"]
    general, espresso, caption = coffee["outputs"]
    assert general["data"]["concepts"][0]["id"] == photos.ESPRESSO
    assert [c["id"] for c in espresso["data"]["concepts"]] == [photos.ESPRESSO]
    assert caption["data"]["text"]["raw"] == "a photo of an espresso"
    assert {c["id"] for c in cat["outputs"][0]["data"]["concepts"][:3]} == photos.CATS
    assert cat["outputs"][1]["data"].get("concepts", []) == []
    assert cat["outputs"][2]["data"].get("text", {}).get("raw", "") == ""  # skipped: filtered


def test_embedding_node_gives_the_vector_in_a_workflow(api, alice):
    r = api.post(
        f"{BASE}/workflows",
        {
            "workflows": [
                {
                    "id": "embed",
                    "nodes": [
                        node(
                            "vec",
                            "general-image-embedding",
                            "7515629a02d5aa9c4a19081500e6b224",
                            model={"user_id": "builtin", "app_id": "main"},
                        )
                    ],
                }
            ]
        },
        key=alice.secret,
    )
    assert r["status"]["code"] == 10000, r
    r = api.post(
        f"{BASE}/workflows/embed/results",
        {"inputs": [image_input(photos.photo("rocket"))]},
        key=alice.secret,
    )
    assert r["status"]["code"] == 10000, r
    [emb] = r["results"][0]["outputs"][0]["data"]["embeddings"]
    assert len(emb["vector"]) == 1280


def test_knowledge_graph_maps_general_concepts_to_a_custom_concept(
    api, alice, make_operator, django_capture_on_commit_callbacks
):
    from collectors_module.workflows import services

    with django_capture_on_commit_callbacks(execute=True):
        for wnid in sorted(photos.CATS):
            services.relation_create(
                app=alice.app,
                subject_concept_id="our-cat",
                object_concept_id=wnid,
                predicate="synonym",
                object_app_id="main",
            )
    make_operator(alice.app, "to-ours", "concept-synonym-mapper", {"knowledge_graph_id": ""})
    r = api.post(
        f"{BASE}/workflows",
        {
            "workflows": [
                {
                    "id": "cats",
                    "nodes": [general_node("general"), node("ours", "to-ours", inputs=["general"])],
                }
            ]
        },
        key=alice.secret,
    )
    assert r["status"]["code"] == 10000, r
    r = api.post(
        f"{BASE}/workflows/cats/results",
        {"inputs": [image_input(photos.photo("chelsea")), image_input(photos.photo("coffee"))]},
        key=alice.secret,
    )
    cat, coffee = r["results"]
    mapped = cat["outputs"][1]["data"]["concepts"]
    assert [c["id"] for c in mapped] == ["our-cat"]
    assert mapped[0]["value"] > 0.3
    assert coffee["outputs"][1]["data"].get("concepts", []) == []
