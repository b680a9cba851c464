"""The workflows REST API as curl and Clarifai's clients use it."""

from __future__ import annotations

import pytest

from .conftest import (
    COLOR_VERSION,
    OCR_VERSION,
    SENTIMENT_VERSION,
    b64,
    builtin_node,
    image_input,
    node,
    solid,
    text_image,
)

BASE = "/v2/users/alice/apps/app1"
GENERAL_ID, GENERAL_VERSION = "aaa03c23b3724a16a56b629203edc62c", "aa7f35c01e0642fda5cf400f543e7c40"


def post_model(api, key, model: dict):
    r = api.post(f"{BASE}/models", {"model": model}, key=key)
    assert r["status"]["code"] == 10000, r
    return r["model"]


@pytest.fixture
def sampler(api, alice):
    return post_model(
        api,
        alice.secret,
        {
            "id": "sampler",
            "model_type_id": "random-sample",
            "output_info": {"params": {"keep_fraction": 1}},
        },
    )


def test_auto_annotation_walkthrough_body_is_accepted_and_runs(api, alice):
    """clarifai-api.md 6.1: a general model, a synonym mapper and a 'greater than' thresholder."""
    post_model(
        api,
        alice.secret,
        {
            "id": GENERAL_ID,
            "model_type_id": "visual-classifier",
            "model_version": {
                "id": GENERAL_VERSION,
                "metadata": {"runner": "builtin:color-recognition"},
            },
        },
    )
    mapper = post_model(
        api,
        alice.secret,
        {
            "id": "synonym-model-id",
            "model_type_id": "concept-synonym-mapper",
            "output_info": {"params": {"knowledge_graph_id": ""}},
        },
    )
    greater = post_model(
        api,
        alice.secret,
        {
            "id": "greater-than-model-id",
            "model_type_id": "concept-thresholder",
            "output_info": {
                "data": {"concepts": [{"id": "peopleID", "value": 0.5}]},
                "params": {"concept_threshold_type": "GREATER_THAN"},
            },
        },
    )
    r = api.post(
        f"{BASE}/concepts/peopleID/relations",
        {
            "concept_relations": [
                {"object_concept": {"id": "red", "app_id": "main"}, "predicate": "synonym"}
            ]
        },
        key=alice.secret,
    )
    assert r["status"]["code"] == 10000, r
    body = {
        "workflows": [
            {
                "id": "auto-annotation-workflow-id",
                "nodes": [
                    {
                        "id": "general-concept",
                        "model": {"id": GENERAL_ID, "model_version": {"id": GENERAL_VERSION}},
                    },
                    {
                        "id": "mapper",
                        "model": {
                            "id": "synonym-model-id",
                            "model_version": {"id": mapper["model_version"]["id"]},
                        },
                        "node_inputs": [{"node_id": "general-concept"}],
                    },
                    {
                        "id": "greater-than",
                        "model": {
                            "id": "greater-than-model-id",
                            "model_version": {"id": greater["model_version"]["id"]},
                        },
                        "node_inputs": [{"node_id": "mapper"}],
                    },
                ],
            }
        ]
    }
    r = api.post(f"{BASE}/workflows", body, key=alice.secret)
    assert r["status"]["code"] == 10000, r
    assert [n["id"] for n in r["workflows"][0]["nodes"]] == [
        "general-concept",
        "mapper",
        "greater-than",
    ]
    assert r["workflows"][0]["nodes"][1]["node_inputs"] == [{"node_id": "general-concept"}]

    r = api.post(
        f"{BASE}/workflows/auto-annotation-workflow-id/results",
        {"inputs": [image_input(solid("red"), "red-1"), image_input(solid("blue"), "blue-1")]},
        key=alice.secret,
    )
    assert r["status"]["code"] == 10000, r
    red, blue = r["results"]
    assert red["input"]["id"] == "red-1"
    assert [o["model"]["id"] for o in red["outputs"]] == [
        GENERAL_ID,
        "synonym-model-id",
        "greater-than-model-id",
    ]
    assert [c["id"] for c in red["outputs"][2]["data"]["concepts"]] == ["peopleID"]
    assert blue["outputs"][1]["data"].get("concepts", []) == []


def test_post_workflow_results_chains_ocr_into_sentiment(api, alice):
    r = api.post(
        f"{BASE}/workflows",
        {
            "workflows": [
                {
                    "id": "read-mood",
                    "nodes": [
                        builtin_node("read", "ocr", OCR_VERSION),
                        builtin_node("mood", "sentiment", SENTIMENT_VERSION, inputs=["read"]),
                    ],
                }
            ]
        },
        key=alice.secret,
    )
    assert r["status"]["code"] == 10000, r
    r = api.post(
        f"{BASE}/workflows/read-mood/results",
        {
            "inputs": [
                image_input(text_image("GREAT HAPPY DAY")),
                image_input(text_image("BAD SAD DAY")),
            ]
        },
        key=alice.secret,
    )
    assert r["status"]["code"] == 10000, r
    assert len(r["results"]) == 2
    moods = []
    for result in r["results"]:
        assert result["status"]["code"] == 10000
        read, mood = result["outputs"]
        assert (read["model"]["id"], mood["model"]["id"]) == ("ocr", "sentiment")
        assert "DAY" in read["data"]["text"]["raw"].upper()
        assert "ms" in read["status"]["details"]  # per-node timing
        concepts = {c["id"]: c["value"] for c in mood["data"]["concepts"]}
        moods.append(max(concepts, key=concepts.get))
    assert moods == ["positive", "negative"]


def test_post_workflow_results_reports_a_bad_input_by_itself(api, alice, sampler):
    api.post(
        f"{BASE}/workflows",
        {
            "workflows": [
                {
                    "id": "wf",
                    "nodes": [
                        builtin_node("colors", "color-recognition", COLOR_VERSION),
                        node("s", "sampler", inputs=["colors"]),
                    ],
                }
            ]
        },
        key=alice.secret,
    )
    r = api.post(
        f"{BASE}/workflows/wf/results",
        {
            "inputs": [
                image_input(solid("green")),
                {"data": {"image": {"base64": b64(b"not an image at all")}}},
            ]
        },
        key=alice.secret,
    )
    assert r["status"]["code"] == 10010, r  # MIXED_STATUS
    good, bad = r["results"]
    assert good["status"]["code"] == 10000
    assert len(good["outputs"]) == 2
    assert "base64" not in good["outputs"][1]["data"].get("image", {})  # bytes not echoed per node
    assert bad["status"]["code"] != 10000
    assert bad["outputs"] == []


def test_post_workflow_results_limits_inputs_to_32(api, alice, sampler):
    api.post(
        f"{BASE}/workflows",
        {"workflows": [{"id": "wf", "nodes": [node("s", "sampler")]}]},
        key=alice.secret,
    )
    inputs = [{"data": {"text": {"raw": f"t{i}"}}} for i in range(33)]
    r = api.post(f"{BASE}/workflows/wf/results", {"inputs": inputs}, key=alice.secret)
    assert r["status"]["code"] == 22999
    assert "32" in r["status"]["details"]
    r = api.post(f"{BASE}/workflows/wf/results", {"inputs": inputs[:32]}, key=alice.secret)
    assert r["status"]["code"] == 10000
    assert len(r["results"]) == 32


def test_post_list_get_patch_delete_workflow(api, alice, sampler):
    r = api.post(
        f"{BASE}/workflows",
        {"workflows": [{"id": "wf", "description": "one", "nodes": [node("s", "sampler")]}]},
        key=alice.secret,
    )
    assert r["status"]["code"] == 10000, r
    wf = r["workflows"][0]
    assert (wf["user_id"], wf["app_id"], wf["description"]) == ("alice", "app1", "one")
    assert wf["nodes"][0]["model"]["model_version"]["id"] == sampler["model_version"]["id"]

    r = api.get(f"{BASE}/workflows", key=alice.secret)
    assert [w["id"] for w in r["workflows"]] == ["wf"]
    r = api.get(f"{BASE}/workflows/wf", key=alice.secret)
    assert r["workflow"]["id"] == "wf"

    r = api.patch(
        f"{BASE}/workflows",
        {
            "action": "overwrite",
            "workflows": [
                {
                    "id": "wf",
                    "nodes": [
                        node("a", "sampler"),
                        node(
                            "b",
                            "sampler",
                            inputs=["a"],
                            output_info_override={"params": {"keep_fraction": 0.25}},
                        ),
                    ],
                }
            ],
        },
        key=alice.secret,
    )
    assert r["status"]["code"] == 10000, r
    nodes = r["workflows"][0]["nodes"]
    assert [n["id"] for n in nodes] == ["a", "b"]
    assert nodes[1]["output_info_override"]["params"] == {"keep_fraction": 0.25}
    assert r["workflows"][0]["description"] == "one"

    r = api.delete(f"{BASE}/workflows/wf", key=alice.secret)
    assert r["status"]["code"] == 10000
    assert api.get(f"{BASE}/workflows/wf", key=alice.secret)["_http"] == 404


@pytest.mark.parametrize("action", ["append", "", "replace-all"])
def test_unknown_patch_actions_are_refused_and_change_nothing(api, alice, sampler, action):
    api.post(
        f"{BASE}/workflows",
        {"workflows": [{"id": "wf", "nodes": [node("s", "sampler")]}]},
        key=alice.secret,
    )
    before = api.get(f"{BASE}/workflows/wf", key=alice.secret)["workflow"]
    r = api.patch(
        f"{BASE}/workflows",
        {"action": action, "workflows": [{"id": "wf", "nodes": [node("x", "sampler")]}]},
        key=alice.secret,
    )
    assert r["status"]["code"] == 22999
    assert "'overwrite', 'merge', 'remove'" in r["status"]["details"]
    assert api.get(f"{BASE}/workflows/wf", key=alice.secret)["workflow"] == before


def test_duplicate_and_invalid_graph_errors(api, alice, sampler):
    body = {"workflows": [{"id": "wf", "nodes": [node("s", "sampler")]}]}
    assert api.post(f"{BASE}/workflows", body, key=alice.secret)["status"]["code"] == 10000
    r = api.post(f"{BASE}/workflows", body, key=alice.secret)
    assert (r["_http"], r["status"]["code"]) == (409, 22100)
    assert "already exists" in r["status"]["details"]
    r = api.post(
        f"{BASE}/workflows",
        {
            "workflows": [
                {
                    "id": "cyc",
                    "nodes": [
                        node("a", "sampler", inputs=["b"]),
                        node("b", "sampler", inputs=["a"]),
                    ],
                }
            ]
        },
        key=alice.secret,
    )
    assert r["status"]["code"] == 22107
    assert "cycle" in r["status"]["details"]
    r = api.post(
        f"{BASE}/workflows",
        {"workflows": [{"id": "bad id!", "nodes": [node("s", "sampler")]}]},
        key=alice.secret,
    )
    assert r["status"]["code"] == 22104


def test_delete_many_and_all(api, alice, sampler):
    for wid in ("w1", "w2", "w3"):
        api.post(
            f"{BASE}/workflows",
            {"workflows": [{"id": wid, "nodes": [node("s", "sampler")]}]},
            key=alice.secret,
        )
    r = api.delete(f"{BASE}/workflows", {"ids": ["w1", "w2"]}, key=alice.secret)
    assert r["status"]["code"] == 10000
    assert [w["id"] for w in api.get(f"{BASE}/workflows", key=alice.secret)["workflows"]] == ["w3"]
    r = api.delete(f"{BASE}/workflows", {"ids": ["missing"]}, key=alice.secret)
    assert r["status"]["code"] == 11101
    r = api.delete(f"{BASE}/workflows", {"delete_all": True}, key=alice.secret)
    assert api.get(f"{BASE}/workflows", key=alice.secret)["workflows"] == []


def test_other_tenants_workflows_do_not_exist(api, alice, bob, sampler):
    api.post(
        f"{BASE}/workflows",
        {"workflows": [{"id": "wf", "nodes": [node("s", "sampler")]}]},
        key=alice.secret,
    )
    for call in (
        lambda: api.get(f"{BASE}/workflows/wf", key=bob.secret),
        lambda: api.get(f"{BASE}/workflows", key=bob.secret),
        lambda: api.post(
            f"{BASE}/workflows/wf/results",
            {"inputs": [{"data": {"text": {"raw": "x"}}}]},
            key=bob.secret,
        ),
        lambda: api.delete(f"{BASE}/workflows/wf", key=bob.secret),
        lambda: api.patch(
            f"{BASE}/workflows",
            {"action": "overwrite", "workflows": [{"id": "wf"}]},
            key=bob.secret,
        ),
    ):
        r = call()
        assert (r["_http"], r["status"]["code"]) == (404, 11101), r
    assert api.get(f"{BASE}/workflows/wf", key=alice.secret)["status"]["code"] == 10000


def test_app_key_uses_short_paths(api, alice, make_key, sampler):
    key = make_key(alice.user, app=alice.app).secret
    r = api.post(
        "/v2/workflows", {"workflows": [{"id": "wf", "nodes": [node("s", "sampler")]}]}, key=key
    )
    assert r["status"]["code"] == 10000, r
    assert [w["id"] for w in api.get("/v2/workflows", key=key)["workflows"]] == ["wf"]
    r = api.post(
        "/v2/workflows/wf/results", {"inputs": [{"data": {"text": {"raw": "hello"}}}]}, key=key
    )
    assert r["results"][0]["outputs"][0]["data"]["text"]["raw"] == "hello"


def test_missing_scope_is_refused(api, alice, make_key, sampler):
    key = make_key(alice.user, scopes=["Workflows:Get", "Apps:Get", "Models:Get"]).secret
    r = api.post(
        f"{BASE}/workflows", {"workflows": [{"id": "wf", "nodes": [node("s", "sampler")]}]}, key=key
    )
    assert r["status"]["code"] == 11007


def test_list_workflows_across_the_users_apps(api, alice, make_app, sampler):
    api.post(
        f"{BASE}/workflows",
        {"workflows": [{"id": "wf", "nodes": [node("s", "sampler")]}]},
        key=alice.secret,
    )
    r = api.get("/v2/users/alice/workflows", key=alice.secret)
    assert [w["id"] for w in r["workflows"]] == ["wf"]


# --- model types ------------------------------------------------------------------------------


def test_list_model_types_describes_operator_fields(api, alice):
    r = api.get("/v2/models/types", key=alice.secret)
    assert r["status"]["code"] == 10000, r
    types = {t["id"]: t for t in r["model_types"]}
    assert {
        "random-sample",
        "metadata-filter",
        "concept-thresholder",
        "max-probability-below",
        "max-probability-above",
        "concept-synonym-mapper",
        "concept-hypernym-mapper",
        "concept-hyponym-mapper",
        "visual-classifier",
        "visual-detector",
        "image-to-text",
        "text-classifier",
    } <= types.keys()
    keep = types["random-sample"]["model_type_fields"][0]
    assert keep["path"] == "output_info.params.keep_fraction"
    assert keep["field_type"] == 7  # RANGE
    assert keep["model_type_range_info"] == {"min": 0.0, "max": 1.0, "step": 0.01}
    assert keep["default_value"] == 1.0
    assert keep["required"] is True
    fields = {f["path"]: f for f in types["concept-thresholder"]["model_type_fields"]}
    comparator = fields["output_info.params.concept_threshold_type"]
    assert comparator["field_type"] == 8  # ENUM
    assert [o["id"] for o in comparator["model_type_enum_options"]][:2] == [
        "GREATER_THAN",
        "GREATER_THAN_OR_EQUAL",
    ]
    assert comparator["model_type_enum_options"][0]["aliases"][0]["id_int"] in (1, "1")
    assert (
        fields["output_info.data.concepts"]["field_type"] == 5
    )  # ARRAY_OF_CONCEPTS_WITH_THRESHOLD
    assert types["image-to-text"]["output_fields"] == ["text"]
    r = api.get(f"{BASE}/models/types", key=alice.secret)
    assert len(r["model_types"]) == len(types)


def test_get_model_type(api, alice):
    r = api.get("/v2/models/types/metadata-filter", key=alice.secret)
    assert r["model_type"]["id"] == "metadata-filter"
    assert "dotted path" in r["model_type"]["model_type_fields"][0]["description"]
    r = api.get("/v2/models/types/nope", key=alice.secret)
    assert (r["_http"], r["status"]["code"]) == (404, 11101)


def test_operator_model_created_over_rest_runs_in_a_workflow(api, alice):
    post_model(
        api,
        alice.secret,
        {
            "id": "meta",
            "model_type_id": "metadata-filter",
            "output_info": {
                "params": {
                    "conditions": [{"key": "device.kind", "op": "in", "value": ["phone", "tablet"]}]
                }
            },
        },
    )
    api.post(
        f"{BASE}/workflows",
        {"workflows": [{"id": "wf", "nodes": [node("m", "meta")]}]},
        key=alice.secret,
    )
    r = api.post(
        f"{BASE}/workflows/wf/results",
        {
            "inputs": [
                {"data": {"text": {"raw": "a"}, "metadata": {"device": {"kind": "phone"}}}},
                {"data": {"text": {"raw": "b"}, "metadata": {"device": {"kind": "desktop"}}}},
                {"data": {"text": {"raw": "c"}}},
            ]
        },
        key=alice.secret,
    )
    kept = [bool(res["outputs"][0]["data"].get("text")) for res in r["results"]]
    assert kept == [True, False, False]


@pytest.mark.parametrize(
    "workflow",
    [
        {"id": "w", "nodes": [{"id": "a"}]},
        {
            "id": "w",
            "nodes": [{"id": "a", "model": {"id": "sampler"}, "node_inputs": [{"node_id": ""}]}],
        },
        {
            "id": "w",
            "nodes": [
                {
                    "id": "a",
                    "model": {"id": "sampler"},
                    "output_info_override": {"params": {"keep_fraction": {"x": [1]}}},
                }
            ],
        },
        {
            "id": "w",
            "nodes": [
                {
                    "id": "a",
                    "model": {"id": "sampler"},
                    "output_info_override": {"params": {"keep_fraction": None}},
                }
            ],
        },
        {
            "id": "w",
            "nodes": [
                {
                    "id": "a",
                    "model": {"id": "thresh"},
                    "output_info_override": {"params": {"concept_threshold_type": [1, 2]}},
                }
            ],
        },
        {
            "id": "w",
            "nodes": [
                {
                    "id": "a",
                    "model": {"id": "thresh"},
                    "output_info_override": {"data": {"concepts": [{"id": "x", "value": 7}]}},
                }
            ],
        },
        {
            "id": "w",
            "nodes": [
                {
                    "id": "a",
                    "model": {"id": "meta"},
                    "output_info_override": {"params": {"conditions": [[[]]], "match": 3}},
                }
            ],
        },
        {"id": "w", "nodes": [{"id": f"n{i}", "model": {"id": "sampler"}} for i in range(500)]},
        {"id": "w", "nodes": [{"id": "a" * 300, "model": {"id": "sampler"}}]},
        {
            "id": "w",
            "nodes": [{"id": "a", "model": {"id": "sampler", "user_id": "nobody", "app_id": "x"}}],
        },
        {
            "id": "w",
            "nodes": [{"id": "a", "model": {"id": "\u0000", "model_version": {"id": "../../x"}}}],
        },
    ],
)
def test_bad_workflow_bodies_get_an_invalid_graph_not_a_500(api, alice, sampler, workflow):
    post_model(api, alice.secret, {"id": "thresh", "model_type_id": "concept-thresholder"})
    post_model(api, alice.secret, {"id": "meta", "model_type_id": "metadata-filter"})
    r = api.post(f"{BASE}/workflows", {"workflows": [workflow]}, key=alice.secret)
    assert r["_http"] == 400, r
    assert r["status"]["code"] == 22107, r
    assert api.get(f"{BASE}/workflows", key=alice.secret)["workflows"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"workflows": [{"id": "", "nodes": []}]},
        {"workflows": [{"id": "w" * 200, "nodes": []}]},
        {"workflows": []},
        {
            "workflows": [
                {
                    "id": "w",
                    "description": "d" * 600,
                    "nodes": [{"id": "a", "model": {"id": "sampler"}}],
                }
            ]
        },
    ],
)
def test_bad_workflow_fields_are_invalid_arguments(api, alice, sampler, body):
    r = api.post(f"{BASE}/workflows", body, key=alice.secret)
    assert r["_http"] == 400, r
    assert r["status"]["code"] in (22104, 22999), r


def test_post_workflow_results_on_empty_and_odd_inputs(api, alice, sampler):
    api.post(
        f"{BASE}/workflows",
        {"workflows": [{"id": "wf", "nodes": [node("s", "sampler")]}]},
        key=alice.secret,
    )
    r = api.post(f"{BASE}/workflows/wf/results", {"inputs": [{"data": {}}]}, key=alice.secret)
    assert r["_http"] == 400, r
    assert r["results"][0]["status"]["code"] != 10000
    r = api.post(f"{BASE}/workflows/wf/results", {"inputs": []}, key=alice.secret)
    assert r["status"]["code"] == 22999
    r = api.post(
        f"{BASE}/workflows/missing/results",
        {"inputs": [{"data": {"text": {"raw": "x"}}}]},
        key=alice.secret,
    )
    assert (r["_http"], r["status"]["code"]) == (404, 11101)
    r = api.post(
        f"{BASE}/workflows/wf/versions/anything/results",
        {"inputs": [{"data": {"text": {"raw": "x"}}}]},
        key=alice.secret,
    )
    assert (r["_http"], r["status"]["code"]) == (404, 11101)
    current = api.get(f"{BASE}/workflows/wf", key=alice.secret)["workflow"]["version"]["id"]
    r = api.post(
        f"{BASE}/workflows/wf/versions/{current}/results",
        {"inputs": [{"data": {"text": {"raw": "x"}}}]},
        key=alice.secret,
    )
    assert r["status"]["code"] == 10000


def test_nul_characters_never_reach_the_database(api, alice, sampler):
    r = api.get(f"{BASE}/workflows/a%00b", key=alice.secret)
    assert r["status"]["code"] == 11101
    r = api.get(f"{BASE}/workflows", {"search": "a\x00"}, key=alice.secret)
    assert r["_http"] == 200
    body = {"workflows": [{"id": "w", "description": "a\u0000b", "nodes": [node("s", "sampler")]}]}
    assert api.post(f"{BASE}/workflows", body, key=alice.secret)["status"]["code"] == 22104
    body = {
        "workflows": [{"id": "w", "metadata": {"k": "\u0000"}, "nodes": [node("s", "sampler")]}]
    }
    assert api.post(f"{BASE}/workflows", body, key=alice.secret)["status"]["code"] == 22104
    bad = node("s", "sampler", output_info_override={"params": {"seed": "\u0000"}})
    assert (
        api.post(
            f"{BASE}/workflows", {"workflows": [{"id": "w", "nodes": [bad]}]}, key=alice.secret
        )["status"]["code"]
        == 22107
    )
    r = api.get(f"{BASE}/concepts/a%00b/relations", key=alice.secret)
    assert (r["status"]["code"], r["concept_relations"]) == (10000, [])
    r = api.get(f"{BASE}/concepts/relations", {"knowledge_graph_id": "\x00"}, key=alice.secret)
    assert r["_http"] == 200
    r = api.post(
        f"{BASE}/concepts/a%00b/relations",
        {"concept_relations": [{"object_concept": {"id": "x"}, "predicate": "synonym"}]},
        key=alice.secret,
    )
    assert r["_http"] == 400
