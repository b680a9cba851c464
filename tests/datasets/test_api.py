"""The Datasets RPCs over REST: CRUD, inputs, versions (frozen snapshots), export requests, bad
input and tenancy. Version builds run here through the build service itself (the function the
Celery task calls); the worker-driven path is in test_capture_export.py."""

from __future__ import annotations

import base64

import pytest
from django.core.files.storage import default_storage

from collectors_module.datasets import services
from collectors_module.datasets.models import (
    DatasetVersion,
    DatasetVersionExport,
    DatasetVersionInput,
)
from collectors_module.inputs.models import Input
from tests.datasets.support import qr_png

pytestmark = pytest.mark.django_db(transaction=True)

BASE = "/v2/users/{user}/apps/{app}"


def base(t) -> str:
    return BASE.format(user=t.user.username, app=t.app.public_id)


def post_inputs(api, t, ids, concepts=("cat",)):
    body = {
        "inputs": [
            {
                "id": i,
                "data": {
                    "text": {"raw": f"text {i}"},
                    "concepts": [{"id": c, "value": 1} for c in concepts],
                },
            }
            for i in ids
        ]
    }
    r = api.post(base(t) + "/inputs", body, key=t.secret)
    assert r["status"]["code"] == 10000, r


def test_dataset_crud_and_patch(api, alice):
    r = api.post(
        base(alice) + "/datasets",
        {"datasets": [{"id": "ds1", "description": "first", "metadata": {"a": 1}}]},
        key=alice.secret,
    )
    assert r["status"]["code"] == 10000, r
    assert r["datasets"][0]["id"] == "ds1"
    assert r["datasets"][0]["user_id"] == alice.user.username
    dup = api.post(base(alice) + "/datasets", {"datasets": [{"id": "ds1"}]}, key=alice.secret)
    assert dup["status"]["code"] == 40010  # DATABASE_DUPLICATE_KEY
    bad = api.post(base(alice) + "/datasets", {"datasets": [{"id": "bad id!"}]}, key=alice.secret)
    assert bad["status"]["code"] == 11102
    merged = api.patch(
        base(alice) + "/datasets",
        {"action": "merge", "datasets": [{"id": "ds1", "metadata": {"b": 2}}]},
        key=alice.secret,
    )
    assert merged["status"]["code"] == 10000, merged
    assert merged["datasets"][0]["metadata"] == {"a": 1, "b": 2}
    over = api.patch(
        base(alice) + "/datasets",
        {
            "action": "overwrite",
            "datasets": [{"id": "ds1", "description": "new", "metadata": {"c": 3}}],
        },
        key=alice.secret,
    )
    assert over["datasets"][0]["metadata"] == {"c": 3}
    assert over["datasets"][0]["description"] == "new"
    noaction = api.patch(base(alice) + "/datasets", {"datasets": [{"id": "ds1"}]}, key=alice.secret)
    assert noaction["status"]["code"] == 11102
    listed = api.get(base(alice) + "/datasets", key=alice.secret)
    assert [d["id"] for d in listed["datasets"]] == ["ds1"]
    got = api.get(base(alice) + "/datasets/ds1", key=alice.secret)
    assert got["dataset"]["description"] == "new"
    gone = api.delete(base(alice) + "/datasets", {"dataset_ids": ["ds1"]}, key=alice.secret)
    assert gone["status"]["code"] == 10000
    missing = api.get(base(alice) + "/datasets/ds1", key=alice.secret)
    assert missing["status"]["code"] == 11101
    assert missing["_http"] == 404


def test_dataset_inputs_and_frozen_version(api, alice):
    api.post(base(alice) + "/datasets", {"datasets": [{"id": "ds"}]}, key=alice.secret)
    post_inputs(api, alice, ["i1", "i2", "i3"])
    r = api.post(
        base(alice) + "/datasets/ds/inputs",
        {"dataset_inputs": [{"input": {"id": "i1"}}, {"input": {"id": "i2"}}]},
        key=alice.secret,
    )
    assert r["status"]["code"] == 10000, r
    assert sorted(d["input"]["id"] for d in r["dataset_inputs"]) == ["i1", "i2"]
    again = api.post(
        base(alice) + "/datasets/ds/inputs",
        {"dataset_inputs": [{"input": {"id": "i1"}}]},
        key=alice.secret,
    )
    assert again["status"]["code"] == 10000  # kept once
    nope = api.post(
        base(alice) + "/datasets/ds/inputs",
        {"dataset_inputs": [{"input": {"id": "zz"}}]},
        key=alice.secret,
    )
    assert nope["status"]["code"] == 30102  # INPUT_DOES_NOT_EXIST
    listed = api.get(base(alice) + "/datasets/ds/inputs", key=alice.secret)
    assert sorted(d["input"]["id"] for d in listed["dataset_inputs"]) == ["i1", "i2"]
    one = api.get(base(alice) + "/datasets/ds/inputs/i2", key=alice.secret)
    assert one["dataset_input"]["input"]["id"] == "i2"
    assert one["dataset_input"]["input"]["dataset_ids"] == ["ds"]
    assert (
        api.get(base(alice) + "/datasets/ds/inputs/i3", key=alice.secret)["status"]["code"] == 30102
    )

    v = api.post(
        base(alice) + "/datasets/ds/versions",
        {"dataset_versions": [{"id": "v1", "description": "first"}]},
        key=alice.secret,
    )
    assert v["status"]["code"] == 10000, v
    assert v["dataset_versions"][0]["status"]["code"] == 64005  # DATASET_VERSION_PENDING
    # An export of a version that is not built yet: a Clarifai status, not a 500.
    early = api.call(
        "PUT",
        base(alice) + "/datasets/ds/versions/v1/exports",
        {"exports": [{"format": "COCO"}]},
        key=alice.secret,
    )
    assert early["status"]["code"] == 64005
    assert early["_http"] == 400, early
    version = DatasetVersion.objects.get(public_id="v1")
    assert services.version_build(version.pk) == "ready"
    assert services.version_build(version.pk) == "skipped"  # done: a second run does nothing
    got = api.get(base(alice) + "/datasets/ds/versions/v1", key=alice.secret)
    assert got["dataset_version"]["status"]["code"] == 64015
    assert got["dataset_version"]["metrics"]["/"]["inputs_count"] == "2"

    # Later changes to the inputs and the dataset do not alter the version.
    api.delete(base(alice) + "/inputs", {"ids": ["i1"]}, key=alice.secret)
    api.post(
        base(alice) + "/datasets/ds/inputs",
        {"dataset_inputs": [{"input": {"id": "i3"}}]},
        key=alice.secret,
    )
    frozen = DatasetVersionInput.objects.filter(version=version)
    assert sorted(frozen.values_list("input_public_id", flat=True)) == ["i1", "i2"]
    i1 = frozen.get(input_public_id="i1")
    assert i1.text == "text i1"
    assert i1.data["concepts"][0]["id"] == "cat"

    versions = api.get(base(alice) + "/datasets/ds/versions", key=alice.secret)
    assert [x["id"] for x in versions["dataset_versions"]] == ["v1"]
    removed = api.delete(
        base(alice) + "/datasets/ds/inputs", {"input_ids": ["i2"]}, key=alice.secret
    )
    assert removed["status"]["code"] == 10000
    assert frozen.count() == 2
    dv = api.delete(
        base(alice) + "/datasets/ds/versions", {"dataset_version_ids": ["v1"]}, key=alice.secret
    )
    assert dv["status"]["code"] == 10000
    assert not DatasetVersionInput.objects.filter(version_id=version.pk).exists()


def test_export_request_bad_input(api, alice):
    api.post(base(alice) + "/datasets", {"datasets": [{"id": "ds"}]}, key=alice.secret)
    api.post(
        base(alice) + "/datasets/ds/versions",
        {"dataset_versions": [{"id": "v1"}]},
        key=alice.secret,
    )
    services.version_build(DatasetVersion.objects.get(public_id="v1").pk)
    url = base(alice) + "/datasets/ds/versions/v1/exports"
    for body in (
        {"exports": [{"format": "TFRECORD"}]},
        {"exports": [{"format": 99}]},
        {"exports": [{}]},
        {"exports": []},
    ):
        r = api.call("PUT", url, body, key=alice.secret)
        assert r["_http"] < 500, (body, r)
        assert r["status"]["code"] != 10000, (body, r)
    assert (
        api.call(
            "PUT",
            base(alice) + "/datasets/ds/versions/nope/exports",
            {"exports": [{"format": "COCO"}]},
            key=alice.secret,
        )["status"]["code"]
        == 11101
    )
    r = api.call("PUT", url, {"exports": [{"format": "COCO"}]}, key=alice.secret)
    assert r["status"]["code"] == 10000, r
    assert r["exports"][0]["status"]["code"] == 64201  # DATASET_VERSION_EXPORT_PENDING
    # Asked again while pending: the same export, no second one.
    r2 = api.call(
        "PUT", url, {"exports": [{"format": "COCO"}, {"format": "COCO"}]}, key=alice.secret
    )
    assert len(r2["exports"]) == 1
    assert DatasetVersionExport.objects.count() == 1
    # Each format by name or by its enum number (PROTOBUF 1, COCO 2, JSON 3) is that format.
    for body, stored, number in (
        ({"format": "CLARIFAI_DATA_JSON"}, "CLARIFAI_DATA_JSON", 3),
        ({"format": 1}, "CLARIFAI_DATA_PROTOBUF", 1),
    ):
        r = api.call("PUT", url, {"exports": [body]}, key=alice.secret)
        assert r["exports"][0]["format"] == number, r
        assert DatasetVersionExport.objects.filter(format=stored).count() == 1


def test_another_tenants_dataset_does_not_exist(api, alice, bob, make_key):
    api.post(base(alice) + "/datasets", {"datasets": [{"id": "secret-ds"}]}, key=alice.secret)
    post_inputs(api, alice, ["a1"])
    api.post(
        base(alice) + "/datasets/secret-ds/inputs",
        {"dataset_inputs": [{"input": {"id": "a1"}}]},
        key=alice.secret,
    )
    calls = [
        ("get", base(alice) + "/datasets/secret-ds", None),
        ("get", base(alice) + "/datasets", None),
        ("get", base(alice) + "/datasets/secret-ds/inputs", None),
        ("post", base(alice) + "/datasets/secret-ds/versions", {}),
        (
            "put",
            base(alice) + "/datasets/secret-ds/versions/v/exports",
            {"exports": [{"format": "COCO"}]},
        ),
        ("delete", base(alice) + "/datasets", {"dataset_ids": ["secret-ds"]}),
    ]
    for method, path, body in calls:
        r = api.call(method.upper(), path, body, key=bob.secret)
        assert r["status"]["code"] == 11101, (method, path, r)
        assert r["_http"] == 404, (method, path, r)
    # Bob's own app, naming Alice's dataset: it does not exist there either.
    r = api.get(base(bob) + "/datasets/secret-ds", key=bob.secret)
    assert r["status"]["code"] == 11101
    # A key without the Datasets scopes.
    weak = make_key(alice.user, scopes=["Inputs:Get"])
    r = api.get(base(alice) + "/datasets", key=weak.secret)
    assert r["status"]["code"] == 11007
    assert r["_http"] == 403


def test_collector_dataset_extension(api, alice, bob, make_collector):
    make_collector(alice, "c1")
    api.post(base(alice) + "/datasets", {"datasets": [{"id": "dest"}]}, key=alice.secret)
    path = f"/api/v2/users/{alice.user.username}/apps/{alice.app.public_id}/collectors/c1/dataset"
    assert api.get(path, key=alice.secret)["dataset_id"] == ""
    r = api.call("PUT", path, {"dataset_id": "dest"}, key=alice.secret)
    assert r["status"]["code"] == 10000
    assert r["dataset_id"] == "dest", r
    assert api.get(path, key=alice.secret)["dataset_id"] == "dest"
    assert (
        api.call("PUT", path, {"dataset_id": "nope"}, key=alice.secret)["status"]["code"] == 11101
    )
    assert api.call("PUT", path, {"dataset_id": "dest"}, key=bob.secret)["status"]["code"] == 11101
    cleared = api.call("PUT", path, {"dataset_id": ""}, key=alice.secret)
    assert cleared["dataset_id"] == ""


def test_a_version_keeps_the_image_of_a_deleted_input_until_it_is_deleted(api, alice, media_root):
    raw = qr_png("keep-me")
    body = {
        "inputs": [{"id": "img", "data": {"image": {"base64": base64.b64encode(raw).decode()}}}]
    }
    assert api.post(base(alice) + "/inputs", body, key=alice.secret)["status"]["code"] == 10000
    name = Input.objects.get(public_id="img").image.name
    api.post(base(alice) + "/datasets", {"datasets": [{"id": "ds"}]}, key=alice.secret)
    api.post(
        base(alice) + "/datasets/ds/inputs",
        {"dataset_inputs": [{"input": {"id": "img"}}]},
        key=alice.secret,
    )
    api.post(
        base(alice) + "/datasets/ds/versions",
        {"dataset_versions": [{"id": "v1"}]},
        key=alice.secret,
    )
    assert services.version_build(DatasetVersion.objects.get(public_id="v1").pk) == "ready"

    assert (
        api.delete(base(alice) + "/inputs", {"ids": ["img"]}, key=alice.secret)["status"]["code"]
        == 10000
    )
    assert default_storage.exists(name)  # the frozen version still refers to it
    assert DatasetVersionInput.objects.get().image_name == name
    r = api.delete(
        base(alice) + "/datasets/ds/versions", {"dataset_version_ids": ["v1"]}, key=alice.secret
    )
    assert r["status"]["code"] == 10000
    assert not default_storage.exists(name)  # nothing refers to it any more


def test_post_inputs_with_dataset_ids(api, alice):
    api.post(base(alice) + "/datasets", {"datasets": [{"id": "ds"}]}, key=alice.secret)
    body = {"inputs": [{"id": "t1", "data": {"text": {"raw": "x"}}, "dataset_ids": ["ds"]}]}
    assert api.post(base(alice) + "/inputs", body, key=alice.secret)["status"]["code"] == 10000
    listed = api.get(base(alice) + "/datasets/ds/inputs", key=alice.secret)
    assert [d["input"]["id"] for d in listed["dataset_inputs"]] == ["t1"]
    # An unknown dataset: refused before anything is stored.
    body = {"inputs": [{"id": "t2", "data": {"text": {"raw": "x"}}, "dataset_ids": ["nope"]}]}
    assert api.post(base(alice) + "/inputs", body, key=alice.secret)["status"]["code"] == 11101
    assert api.get(base(alice) + "/inputs/t2", key=alice.secret)["status"]["code"] != 10000


def test_patch_dataset_versions_changes_the_description_never_the_snapshot(api, alice, bob):
    api.post(base(alice) + "/datasets", {"datasets": [{"id": "ds"}]}, key=alice.secret)
    post_inputs(api, alice, ["p1", "p2"])
    api.post(
        base(alice) + "/datasets/ds/inputs",
        {"dataset_inputs": [{"input": {"id": "p1"}}, {"input": {"id": "p2"}}]},
        key=alice.secret,
    )
    r = api.post(
        base(alice) + "/datasets/ds/versions",
        {"dataset_versions": [{"id": "v1", "description": "first", "metadata": {"a": 1, "b": 2}}]},
        key=alice.secret,
    )
    assert r["status"]["code"] == 10000, r
    version = DatasetVersion.objects.get(public_id="v1")
    assert services.version_build(version.pk) == "ready"
    frozen = list(DatasetVersionInput.objects.filter(version=version).values_list("pk", "data"))
    path = base(alice) + "/datasets/ds/versions"

    def patch(action, pb, key=alice.secret):
        return api.call("PATCH", path, {"action": action, "dataset_versions": [pb]}, key=key)

    r = patch("merge", {"id": "v1", "metadata": {"b": 3, "c": {"d": 4}}})
    assert r["status"]["code"] == 10000, r
    assert r["dataset_versions"][0]["metadata"] == {"a": 1, "b": 3, "c": {"d": 4}}
    assert r["dataset_versions"][0]["description"] == "first"
    r = patch("overwrite", {"id": "v1", "description": "cleaned", "metadata": {"only": True}})
    assert r["status"]["code"] == 10000, r
    got = api.get(path + "/v1", key=alice.secret)["dataset_version"]
    assert (got["description"], got["metadata"]) == ("cleaned", {"only": True})
    assert got["status"]["code"] == 64015  # DATASET_VERSION_READY: still built
    r = patch("remove", {"id": "v1", "metadata": {"only": None}})
    assert r["status"]["code"] == 10000, r
    assert r["dataset_versions"][0].get("metadata") in ({}, None)
    # What a version froze cannot be patched; bad actions and unknown versions are refused.
    r = patch("overwrite", {"id": "v1", "annotation_filter_config": {}})
    assert r["status"]["code"] == 11102, r
    assert "annotation_filter_config cannot be changed" in r["status"]["details"]
    assert patch("replace", {"id": "v1", "description": "x"})["status"]["code"] == 11102
    assert patch("overwrite", {"id": "nope", "description": "x"})["status"]["code"] == 11101
    assert patch("overwrite", {"description": "x"})["status"]["code"] == 11102
    too_long = patch("overwrite", {"id": "v1", "description": "x" * 600})
    assert too_long["status"]["code"] == 11102
    # Another tenant: does not exist.
    other = patch("overwrite", {"id": "v1", "description": "mine now"}, key=bob.secret)
    assert (other["status"]["code"], other["_http"]) == (11101, 404)
    version.refresh_from_db()
    assert version.description == "cleaned"
    assert (
        list(DatasetVersionInput.objects.filter(version=version).values_list("pk", "data"))
        == frozen
    )
