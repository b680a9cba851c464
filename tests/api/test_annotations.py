"""Annotations over REST: a collector's collected outputs read back, listed, filtered by input
and model version, patched and deleted; annotations posted by the owner; bad input refused with
nothing half-changed; another tenant's annotations do not exist."""

from __future__ import annotations

import pytest
from clarifai_grpc.grpc.api import resources_pb2

from collectors_module.core.errors import SC
from collectors_module.inputs import services
from collectors_module.inputs.convert import collected_annotation_id
from collectors_module.inputs.models import Annotation, Input

BASE = "/v2/users/alice/apps/app1"
ANN = f"{BASE}/annotations"
VERSION = "996e3c70d6372b1e7e3c10875ebd2b8b"


def collected(concepts: dict[str, float], version: str = VERSION, model: str = "sentiment"):
    """One collected output as the capture pipeline stores it (collect_outputs)."""
    return {
        "model_id": model,
        "model_version_id": version,
        "model_user_id": "builtin",
        "model_app_id": "main",
        "data": {"concepts": [{"id": k, "name": k, "value": v} for k, v in concepts.items()]},
    }


def make_input(tenant, input_id: str, text: str = "hello", annotations=None) -> Input:
    return services.input_create(
        app=tenant.app,
        input_pb=resources_pb2.Input(id=input_id, data=resources_pb2.Data(text={"raw": text})),
        annotations=annotations,
    )


def state(tenant) -> list:
    return sorted(
        Annotation.objects.filter(app=tenant.app).values_list("public_id", "data", "input_id")
    )


def test_collected_outputs_are_annotations_made_by_the_source_model(api, alice):
    row = make_input(alice, "cap-1", annotations=[collected({"positive": 0.9, "neutral": 0.1})])
    r = api.get(ANN, key=alice.secret)
    assert r["status"]["code"] == SC.SUCCESS, r
    (ann,) = r["annotations"]
    assert ann["id"] == collected_annotation_id(row.pk, 0)
    assert ann["input_id"] == "cap-1"
    assert ann["model_version_id"] == VERSION
    assert ann["worker"]["model"]["id"] == "sentiment"
    assert ann["worker"]["model"]["user_id"] == "builtin"
    assert ann["user_id"] == "alice"
    assert ann["status"]["code"] == SC.ANNOTATION_SUCCESS
    assert [c["id"] for c in ann["data"]["concepts"]] == ["positive", "neutral"]
    got = api.get(f"{BASE}/inputs/cap-1/annotations/{ann['id']}", key=alice.secret)
    assert got["annotation"] == ann


def test_list_filters_by_input_and_by_model_version(api, alice):
    make_input(alice, "a", annotations=[collected({"positive": 1.0})])
    make_input(alice, "b", annotations=[collected({"red": 1.0}, version="b" * 32, model="c")])
    make_input(alice, "c")
    by_input = api.get(ANN, {"input_ids": ["b"]}, key=alice.secret)["annotations"]
    assert [a["input_id"] for a in by_input] == ["b"]
    by_version = api.get(ANN, {"model_version_ids": [VERSION]}, key=alice.secret)["annotations"]
    assert [a["input_id"] for a in by_version] == ["a"]
    both = api.get(ANN, {"input_ids": ["a"], "model_version_ids": ["b" * 32]}, key=alice.secret)
    assert both["status"]["code"] == SC.SUCCESS
    assert "annotations" not in both or both["annotations"] == []
    page = api.get(ANN, {"per_page": 1, "page": 2}, key=alice.secret)["annotations"]
    assert [a["input_id"] for a in page] == ["b"]


def test_outputs_a_bulk_writer_left_pending_are_imported_once(api, alice):
    """The capture pipeline's batch path inserts Input rows directly (annotations_pending stays
    True); the first annotation read turns their outputs into rows, with stable ids."""
    rows = Input.objects.bulk_create(
        [
            Input(
                app=alice.app,
                public_id=f"bulk-{i}",
                text=f"t{i}",
                annotations=[collected({"positive": 0.5 + i / 10})],
                status_code=SC.INPUT_DOWNLOAD_SUCCESS,
            )
            for i in range(3)
        ]
        + [Input(app=alice.app, public_id="bulk-none", text="x", status_code=30000)]
    )
    assert Input.objects.filter(app=alice.app, annotations_pending=True).count() == 4
    first = api.get(ANN, key=alice.secret)["annotations"]
    assert sorted(a["input_id"] for a in first) == ["bulk-0", "bulk-1", "bulk-2"]
    assert not Input.objects.filter(app=alice.app, annotations_pending=True).exists()
    again = api.get(ANN, key=alice.secret)["annotations"]
    assert again == first
    assert services.annotations_import_pending(app=alice.app) == 0
    ids = {a["input_id"]: a["id"] for a in first}
    assert ids["bulk-1"] == collected_annotation_id(rows[1].pk, 0)


def test_post_get_patch_delete_an_annotation(api, alice):
    make_input(alice, "in-1")
    box = {"top_row": 0.1, "left_col": 0.1, "bottom_row": 0.5, "right_col": 0.6}
    r = api.post(
        ANN,
        {
            "annotations": [
                {
                    "id": "ann-1",
                    "input_id": "in-1",
                    "data": {
                        "regions": [
                            {
                                "id": "r1",
                                "region_info": {"bounding_box": box},
                                "data": {"concepts": [{"id": "cat", "value": 1}]},
                            }
                        ],
                        "metadata": {"by": "hand"},
                    },
                }
            ]
        },
        key=alice.secret,
    )
    assert r["status"]["code"] == SC.SUCCESS, r
    assert r["annotations"][0]["user_id"] == "alice"
    assert r["annotations"][0]["input_level"] is False

    def patch(action, data, **extra):
        return api.patch(
            ANN,
            {"action": action, "annotations": [{"id": "ann-1", "data": data}], **extra},
            key=alice.secret,
        )

    r = patch("merge", {"concepts": [{"id": "checked", "value": 1}], "metadata": {"n": 1}})
    assert r["status"]["code"] == SC.SUCCESS, r
    data = r["annotations"][0]["data"]
    assert [c["id"] for c in data["concepts"]] == ["checked"]
    assert len(data["regions"]) == 1
    assert data["metadata"] == {"by": "hand", "n": 1}
    r = patch("remove", {"metadata": {"by": None}, "regions": [{"id": "r1"}]})
    data = r["annotations"][0]["data"]
    assert not data.get("regions")
    assert data["metadata"] == {"n": 1}
    r = patch("overwrite", {"concepts": [{"id": "dog", "value": 1}]})
    data = r["annotations"][0]["data"]
    assert [(c["id"], c["name"]) for c in data["concepts"]] == [("dog", "dog")]
    assert not data.get("metadata")
    assert Annotation.objects.get().data == {
        "concepts": [{"id": "dog", "name": "dog", "value": 1.0}]
    }
    r = api.delete(f"{BASE}/inputs/in-1/annotations/ann-1", key=alice.secret)
    assert r["status"]["code"] == SC.SUCCESS
    assert not Annotation.objects.exists()


def test_remove_with_delete_if_empty_data_deletes_the_annotation(api, alice):
    make_input(alice, "in-1")
    api.post(
        ANN,
        {"annotations": [{"id": "a1", "input_id": "in-1", "data": {"concepts": [{"id": "x"}]}}]},
        key=alice.secret,
    )
    r = api.patch(
        ANN,
        {
            "action": "remove",
            "delete_if_empty_data": True,
            "annotations": [{"id": "a1", "data": {"concepts": [{"id": "x"}]}}],
        },
        key=alice.secret,
    )
    assert r["status"]["code"] == SC.SUCCESS, r
    assert "a1" in r["status"]["details"]
    assert not Annotation.objects.exists()


@pytest.mark.parametrize(
    ("annotation", "code", "needle"),
    [
        ({"input_id": "in-1", "data": {"image": {"url": "https://x.test/a.png"}}}, 24155, "image"),
        ({"input_id": "in-1", "data": {"concepts": [{"id": "c", "value": 2}]}}, 24155, "value"),
        ({"input_id": "in-1", "data": {"concepts": [{"id": "bad id!"}]}}, 24155, "concept id"),
        ({"input_id": "missing", "data": {}}, 11101, "missing"),
        ({"data": {}}, 24155, "input_id"),
        ({"input_id": "in-1", "user_id": "bob"}, 24155, "user_id"),
        ({"id": "has space", "input_id": "in-1"}, 24155, "annotation id"),
    ],
)
def test_bad_annotations_are_refused_and_none_of_the_batch_is_stored(
    api, alice, annotation, code, needle
):
    make_input(alice, "in-1")
    good = {"id": "fine", "input_id": "in-1", "data": {"concepts": [{"id": "ok"}]}}
    r = api.post(ANN, {"annotations": [good, annotation]}, key=alice.secret)
    assert r["status"]["code"] == code, r
    assert needle in r["status"]["details"]
    assert not Annotation.objects.exists()


def test_duplicate_annotation_ids_are_refused(api, alice):
    make_input(alice, "in-1")
    body = {"annotations": [{"id": "a1", "input_id": "in-1"}]}
    assert api.post(ANN, body, key=alice.secret)["status"]["code"] == SC.SUCCESS
    r = api.post(ANN, body, key=alice.secret)
    assert (r["_http"], r["status"]["code"]) == (409, SC.DATABASE_DUPLICATE_KEY)
    twice = {"annotations": [{"id": "a2", "input_id": "in-1"}, {"id": "a2", "input_id": "in-1"}]}
    assert api.post(ANN, twice, key=alice.secret)["status"]["code"] == SC.DATABASE_DUPLICATE_KEY
    assert Annotation.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"action": "append", "annotations": [{"id": "a1", "data": {}}]}, "append"),
        ({"action": "", "annotations": [{"id": "a1", "data": {}}]}, "action is required"),
        ({"action": "merge", "annotations": [{"id": "a1", "input_id": "other"}]}, "input_id"),
        (
            {"action": "merge", "annotations": [{"id": "a1", "model_version_id": "f" * 32}]},
            "model_version_id",
        ),
        ({"action": "merge", "annotations": [{"id": "a1", "task_id": "t"}]}, "task_id"),
        ({"action": "merge", "annotations": [{"id": "a1"}]}, "nothing to patch"),
        ({"action": "merge", "annotations": [{"data": {}}]}, "id is required"),
    ],
)
def test_bad_patches_are_refused_and_change_nothing(api, alice, body, needle):
    make_input(alice, "in-1")
    make_input(alice, "other")
    api.post(
        ANN,
        {"annotations": [{"id": "a1", "input_id": "in-1", "data": {"concepts": [{"id": "x"}]}}]},
        key=alice.secret,
    )
    before = state(alice)
    r = api.patch(ANN, body, key=alice.secret)
    assert r["_http"] == 400, r
    assert r["status"]["code"] == SC.ANNOTATION_INVALID_ARGUMENT
    assert needle in r["status"]["details"]
    assert state(alice) == before


def test_a_patch_naming_a_missing_annotation_changes_none_of_the_others(api, alice):
    make_input(alice, "in-1")
    api.post(ANN, {"annotations": [{"id": "a1", "input_id": "in-1"}]}, key=alice.secret)
    before = state(alice)
    r = api.patch(
        ANN,
        {
            "action": "overwrite",
            "annotations": [
                {"id": "a1", "data": {"concepts": [{"id": "new"}]}},
                {"id": "nope", "data": {"concepts": [{"id": "new"}]}},
            ],
        },
        key=alice.secret,
    )
    assert r["status"]["code"] == SC.CONN_DOES_NOT_EXIST
    assert state(alice) == before


def test_delete_annotations_by_ids_by_inputs_and_pairwise(api, alice):
    for i in ("i1", "i2"):
        make_input(alice, i)
    api.post(
        ANN,
        {
            "annotations": [
                {"id": "a1", "input_id": "i1"},
                {"id": "a2", "input_id": "i1"},
                {"id": "b1", "input_id": "i2"},
            ]
        },
        key=alice.secret,
    )
    r = api.delete(ANN, {"ids": ["a1"], "input_ids": ["i2"]}, key=alice.secret)
    assert r["status"]["code"] == SC.CONN_DOES_NOT_EXIST  # a1 is not i2's: nothing deleted
    r = api.delete(ANN, {"ids": ["a1", "b1"], "input_ids": ["i1"]}, key=alice.secret)
    assert r["status"]["code"] == SC.ANNOTATION_INVALID_ARGUMENT
    r = api.delete(ANN, {"ids": ["a1", "gone"]}, key=alice.secret)
    assert r["status"]["code"] == SC.CONN_DOES_NOT_EXIST
    assert Annotation.objects.count() == 3
    assert api.delete(ANN, {"ids": ["a1"]}, key=alice.secret)["status"]["code"] == SC.SUCCESS
    r = api.delete(f"{BASE}/inputs/annotations", {"input_ids": ["i1"]}, key=alice.secret)
    assert r["status"]["code"] == SC.SUCCESS
    assert list(Annotation.objects.values_list("public_id", flat=True)) == ["b1"]
    assert api.delete(ANN, {}, key=alice.secret)["status"]["code"] == SC.ANNOTATION_INVALID_ARGUMENT


def test_deleting_an_input_deletes_its_annotations(api, alice):
    make_input(alice, "cap", annotations=[collected({"positive": 1.0})])
    assert api.delete(f"{BASE}/inputs/cap", key=alice.secret)["status"]["code"] == SC.SUCCESS
    assert not Annotation.objects.exists()


def test_another_tenants_annotations_do_not_exist(api, alice, bob):
    make_input(alice, "cap", annotations=[collected({"positive": 1.0})])
    ann_id = Annotation.objects.get().public_id
    before = state(alice)
    for method, path, body in (
        ("GET", ANN, None),
        ("GET", f"{BASE}/inputs/cap/annotations/{ann_id}", None),
        ("POST", ANN, {"annotations": [{"input_id": "cap"}]}),
        ("PATCH", ANN, {"action": "overwrite", "annotations": [{"id": ann_id, "data": {}}]}),
        ("DELETE", ANN, {"ids": [ann_id]}),
        ("DELETE", f"{BASE}/inputs/cap/annotations/{ann_id}", None),
    ):
        r = api.call(method, path, body=body, key=bob.secret)
        assert (r["_http"], r["status"]["code"]) == (404, SC.CONN_DOES_NOT_EXIST), (method, path)
    # Bob's own app does not see Alice's annotation either, even by id.
    r = api.get(f"/v2/users/bob/apps/bobapp/inputs/cap/annotations/{ann_id}", key=bob.secret)
    assert r["status"]["code"] == SC.CONN_DOES_NOT_EXIST
    assert state(alice) == before


def test_annotations_need_their_scopes(api, alice, make_key):
    make_input(alice, "cap")
    reader = make_key(alice.user, scopes=["Apps:Get", "Inputs:Get"])
    r = api.get(ANN, key=reader.secret)
    assert r["status"]["code"] == SC.CONN_INSUFFICIENT_SCOPES
    assert "Annotations:Get" in r["status"]["details"]


def test_gallery_shows_posted_annotations_and_hides_deleted_ones(api, alice, client):
    make_input(alice, "cap", annotations=[collected({"positive": 1.0})])
    client.force_login(alice.user)
    assert "sentiment:</span> positive" in client.get("/apps/app1/").content.decode()
    ann_id = Annotation.objects.get().public_id
    api.delete(ANN, {"ids": [ann_id]}, key=alice.secret)
    assert "sentiment:</span>" not in client.get("/apps/app1/").content.decode()
