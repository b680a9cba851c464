"""Concepts of an app: PostConcepts, ListConcepts, GetConcept, PatchConcepts, and deleting concept
relations; bad input refused with nothing half-changed; another tenant's concepts do not exist."""

from __future__ import annotations

import pytest

from collectors_module.core.errors import SC
from collectors_module.workflows.models import Concept, ConceptRelation

BASE = "/v2/users/alice/apps/app1"
CONCEPTS = f"{BASE}/concepts"


def post(api, alice, *concepts):
    return api.post(CONCEPTS, {"concepts": list(concepts)}, key=alice.secret)


def stored(alice) -> list:
    return sorted(Concept.objects.filter(app=alice.app).values_list("public_id", "name"))


def test_post_list_get_and_patch_concepts(api, alice):
    r = post(api, alice, {"id": "cat", "name": "Cat"}, {"id": "dog"})
    assert r["status"]["code"] == SC.SUCCESS, r
    assert [(c["id"], c["name"], c["app_id"]) for c in r["concepts"]] == [
        ("cat", "Cat", "app1"),
        ("dog", "dog", "app1"),
    ]
    listed = api.get(CONCEPTS, key=alice.secret)["concepts"]
    assert [c["id"] for c in listed] == ["cat", "dog"]
    assert [c["id"] for c in api.get(CONCEPTS, {"id": "do"}, key=alice.secret)["concepts"]] == [
        "dog"
    ]
    assert [
        c["id"] for c in api.get(CONCEPTS, {"per_page": 1, "page": 2}, key=alice.secret)["concepts"]
    ] == ["dog"]
    got = api.get(f"{CONCEPTS}/cat", key=alice.secret)
    assert got["concept"]["name"] == "Cat"
    r = api.patch(
        CONCEPTS,
        {"action": "overwrite", "concepts": [{"id": "cat", "name": "Domestic cat", "value": 1}]},
        key=alice.secret,
    )
    assert r["status"]["code"] == SC.SUCCESS, r
    assert stored(alice) == [("cat", "Domestic cat"), ("dog", "dog")]


def test_an_empty_request_is_refused(api, alice):
    r = post(api, alice)
    assert r["status"]["code"] == SC.CONCEPTS_INVALID_REQUEST
    assert "at least one" in r["status"]["details"]


def test_app_keys_use_the_short_paths(api, alice, make_key):
    key = make_key(alice.user, app=alice.app).secret
    assert (
        api.post("/v2/concepts", {"concepts": [{"id": "tree"}]}, key=key)["status"]["code"]
        == SC.SUCCESS
    )
    assert api.get("/v2/concepts/tree", key=key)["concept"]["id"] == "tree"


@pytest.mark.parametrize(
    ("concepts", "code", "needle"),
    [
        ([{"id": "cat"}], SC.DATABASE_DUPLICATE_KEY, "already exists"),
        ([{"id": "new"}, {"id": "new"}], SC.CONCEPTS_INVALID_REQUEST, "twice"),
        ([{"id": ""}], SC.CONCEPTS_INVALID_REQUEST, "concept id"),
        ([{"id": "x" * 300}], SC.CONCEPTS_INVALID_REQUEST, "concept id"),
        (
            [{"id": "new", "language": "fr"}],
            SC.CONCEPTS_INVALID_REQUEST,
            "language is not supported",
        ),
        (
            [{"id": "new", "app_id": "elsewhere"}],
            SC.CONCEPTS_INVALID_REQUEST,
            "app_id cannot be changed",
        ),
    ],
)
def test_bad_posts_create_none_of_the_batch(api, alice, concepts, code, needle):
    post(api, alice, {"id": "cat"})
    r = post(api, alice, {"id": "fine"}, *concepts)
    assert r["status"]["code"] == code, r
    assert needle in r["status"]["details"]
    assert stored(alice) == [("cat", "cat")]


@pytest.mark.parametrize(
    ("body", "code", "needle"),
    [
        (
            {"action": "merge", "concepts": [{"id": "cat", "name": "x"}]},
            SC.CONCEPTS_INVALID_REQUEST,
            "'overwrite'",
        ),
        (
            {
                "action": "overwrite",
                "concepts": [{"id": "cat", "name": "x"}, {"id": "missing", "name": "y"}],
            },
            SC.CONN_DOES_NOT_EXIST,
            "missing",
        ),
        (
            {"action": "overwrite", "concepts": [{"id": "cat", "user_id": "bob"}]},
            SC.CONCEPTS_INVALID_REQUEST,
            "user_id cannot be changed",
        ),
        (
            {"action": "overwrite", "concepts": [{"id": "cat", "definition": "a pet"}]},
            SC.CONCEPTS_INVALID_REQUEST,
            "definition cannot be changed",
        ),
        (
            {"action": "overwrite", "concepts": [{"name": "x"}]},
            SC.CONCEPTS_INVALID_REQUEST,
            "id is required",
        ),
    ],
)
def test_bad_patches_change_nothing(api, alice, body, code, needle):
    post(api, alice, {"id": "cat", "name": "Cat"}, {"id": "dog"})
    r = api.patch(CONCEPTS, body, key=alice.secret)
    assert r["status"]["code"] == code, r
    assert needle in r["status"]["details"]
    assert stored(alice) == [("cat", "Cat"), ("dog", "dog")]


def test_delete_concept_relations_by_id_and_all_of_a_concept(api, alice):
    rels = api.post(
        f"{CONCEPTS}/kitten/relations",
        {
            "concept_relations": [
                {"object_concept": {"id": "cat"}, "predicate": "hyponym"},
                {"object_concept": {"id": "animal"}, "predicate": "hyponym"},
            ]
        },
        key=alice.secret,
    )["concept_relations"]
    path = f"{CONCEPTS}/kitten/relations"
    r = api.delete(path, {"ids": [rels[0]["id"], "not-a-relation"]}, key=alice.secret)
    assert r["status"]["code"] == SC.CONN_DOES_NOT_EXIST
    assert ConceptRelation.objects.count() == 2
    r = api.delete(path, {"ids": [rels[0]["id"]]}, key=alice.secret)
    assert r["status"]["code"] == SC.SUCCESS
    assert list(ConceptRelation.objects.values_list("object_concept_id", flat=True)) == ["animal"]
    assert api.delete(path, {}, key=alice.secret)["status"]["code"] == SC.SUCCESS
    assert not ConceptRelation.objects.exists()


def test_another_tenants_concepts_do_not_exist(api, alice, bob):
    post(api, alice, {"id": "cat"})
    for method, path, body in (
        ("GET", CONCEPTS, None),
        ("GET", f"{CONCEPTS}/cat", None),
        ("POST", CONCEPTS, {"concepts": [{"id": "bob"}]}),
        ("PATCH", CONCEPTS, {"action": "overwrite", "concepts": [{"id": "cat", "name": "bob"}]}),
        ("DELETE", f"{CONCEPTS}/cat/relations", {}),
    ):
        r = api.call(method, path, body=body, key=bob.secret)
        assert (r["_http"], r["status"]["code"]) == (404, SC.CONN_DOES_NOT_EXIST), (method, path)
    assert api.get("/v2/users/bob/apps/bobapp/concepts/cat", key=bob.secret)["_http"] == 404
    assert stored(alice) == [("cat", "cat")]
