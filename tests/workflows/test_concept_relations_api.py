"""PostConceptRelations / ListConceptRelations and the relation services."""

from __future__ import annotations

import pytest

from collectors_module.core.errors import SC, ApiError
from collectors_module.workflows import selectors, services

BASE = "/v2/users/alice/apps/app1"


def post(api, key, concept_id, relations):
    return api.post(
        f"{BASE}/concepts/{concept_id}/relations", {"concept_relations": relations}, key=key
    )


def test_post_then_list_relations(api, alice):
    r = post(
        api,
        alice.secret,
        "honey",
        [
            {"object_concept": {"id": "food"}, "predicate": "hyponym"},
            {"object_concept": {"id": "miel"}, "predicate": "synonym", "knowledge_graph_id": "fr"},
        ],
    )
    assert r["status"]["code"] == 10000, r
    rels = r["concept_relations"]
    assert [
        (x["subject_concept"]["id"], x["predicate"], x["object_concept"]["id"]) for x in rels
    ] == [
        ("honey", "hyponym", "food"),
        ("honey", "synonym", "miel"),
    ]
    assert all(len(x["id"]) == 32 for x in rels)
    r = api.get(f"{BASE}/concepts/relations", key=alice.secret)
    assert len(r["concept_relations"]) == 2
    r = api.get(f"{BASE}/concepts/honey/relations", {"predicate": "synonym"}, key=alice.secret)
    assert [x["object_concept"]["id"] for x in r["concept_relations"]] == ["miel"]
    r = api.get(f"{BASE}/concepts/relations", {"knowledge_graph_id": "fr"}, key=alice.secret)
    assert [x["object_concept"]["id"] for x in r["concept_relations"]] == ["miel"]


def test_hypernym_appears_as_the_inverse_of_a_hyponym(api, alice):
    post(api, alice.secret, "honey", [{"object_concept": {"id": "food"}, "predicate": "hyponym"}])
    r = api.get(f"{BASE}/concepts/food/relations", key=alice.secret)
    assert [
        (x["subject_concept"]["id"], x["predicate"], x["object_concept"]["id"])
        for x in r["concept_relations"]
    ] == [("food", "hypernym", "honey")]
    r = api.get(f"{BASE}/concepts/food/relations", {"predicate": "hyponym"}, key=alice.secret)
    assert r["concept_relations"] == []


def test_synonym_is_seen_from_both_sides(api, alice):
    post(api, alice.secret, "puppy", [{"object_concept": {"id": "dog"}, "predicate": "synonym"}])
    r = api.get(f"{BASE}/concepts/dog/relations", key=alice.secret)
    assert [
        (x["subject_concept"]["id"], x["object_concept"]["id"]) for x in r["concept_relations"]
    ] == [("dog", "puppy")]


def test_posting_the_same_relation_twice_stores_it_once(api, alice):
    body = [{"object_concept": {"id": "food"}, "predicate": "hyponym"}]
    first = post(api, alice.secret, "honey", body)["concept_relations"][0]["id"]
    second = post(api, alice.secret, "honey", body)["concept_relations"][0]["id"]
    assert first == second
    assert len(api.get(f"{BASE}/concepts/relations", key=alice.secret)["concept_relations"]) == 1


def test_cross_app_object_concept_keeps_its_app(api, alice):
    r = post(
        api,
        alice.secret,
        "my-red",
        [{"object_concept": {"id": "red", "app_id": "main"}, "predicate": "synonym"}],
    )
    assert r["concept_relations"][0]["object_concept"]["app_id"] == "main"
    assert r["concept_relations"][0]["subject_concept"]["app_id"] == "app1"


@pytest.mark.parametrize(
    "relation",
    [
        {"object_concept": {"id": "food"}, "predicate": "is-a"},
        {"object_concept": {"id": "food"}, "predicate": ""},
        {"object_concept": {"id": ""}, "predicate": "synonym"},
        {"object_concept": {"id": "honey"}, "predicate": "synonym"},
        {"object_concept": {"id": "food"}, "predicate": "synonym", "knowledge_graph_id": "bad kg!"},
    ],
)
def test_bad_relations_are_refused_and_nothing_is_stored(api, alice, relation):
    r = post(
        api,
        alice.secret,
        "honey",
        [{"object_concept": {"id": "ok"}, "predicate": "synonym"}, relation],
    )
    assert r["status"]["code"] in (SC.CONCEPTS_INVALID_REQUEST, SC.CONN_INVALID_REQUEST), r
    assert r["_http"] == 400
    assert api.get(f"{BASE}/concepts/relations", key=alice.secret)["concept_relations"] == []


def test_list_rejects_an_unknown_predicate(api, alice):
    r = api.get(f"{BASE}/concepts/relations", {"predicate": "cousin"}, key=alice.secret)
    assert r["status"]["code"] == SC.CONCEPTS_INVALID_REQUEST


def test_relations_need_a_personal_access_token(api, alice, make_key):
    app_key = make_key(alice.user, app=alice.app).secret
    r = api.get(f"{BASE}/concepts/relations", key=app_key)
    assert r["status"]["code"] == 11007
    r = post(api, app_key, "honey", [{"object_concept": {"id": "food"}, "predicate": "hyponym"}])
    assert r["status"]["code"] == 11007


def test_another_tenants_knowledge_graph_does_not_exist(api, alice, bob):
    post(api, alice.secret, "honey", [{"object_concept": {"id": "food"}, "predicate": "hyponym"}])
    r = api.get(f"{BASE}/concepts/relations", key=bob.secret)
    assert (r["_http"], r["status"]["code"]) == (404, 11101)
    r = post(api, bob.secret, "x", [{"object_concept": {"id": "y"}, "predicate": "synonym"}])
    assert (r["_http"], r["status"]["code"]) == (404, 11101)


def test_relations_delete_and_pagination(alice):
    made = [
        services.relation_create(
            app=alice.app, subject_concept_id=f"c{i}", object_concept_id="x", predicate="hyponym"
        )
        for i in range(5)
    ]
    assert len(selectors.relations_of_app(alice.app)) == 5
    assert services.relations_delete(app=alice.app, ids=[made[0].public_id, "missing"]) == 1
    assert [v.subject for v in selectors.relations_of_app(alice.app)] == ["c1", "c2", "c3", "c4"]
    assert [v.subject for v in selectors.relations_of_app(alice.app, concept_id="x")] == ["x"] * 4


def test_relation_with_a_taken_id_is_refused(alice):
    services.relation_create(
        app=alice.app,
        subject_concept_id="a",
        object_concept_id="b",
        predicate="synonym",
        relation_id="r1",
    )
    with pytest.raises(ApiError) as exc:
        services.relation_create(
            app=alice.app,
            subject_concept_id="c",
            object_concept_id="d",
            predicate="synonym",
            relation_id="r1",
        )
    assert exc.value.code == SC.DATABASE_DUPLICATE_KEY
