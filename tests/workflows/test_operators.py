"""Each operator's table of cases: pure functions, no database."""

from __future__ import annotations

import pytest
from clarifai_grpc.grpc.api import resources_pb2
from google.protobuf import struct_pb2

from collectors_module.core.errors import SC, ApiError
from collectors_module.workflows.model_types import OPERATOR_TYPES
from collectors_module.workflows.operators import registry, sampling
from collectors_module.workflows.operators.registry import run_operator


def data(concepts=(), metadata=None, regions=(), text=""):
    d = resources_pb2.Data(
        concepts=[resources_pb2.Concept(id=c, name=c, value=v) for c, v in concepts]
    )
    if metadata is not None:
        s = struct_pb2.Struct()
        s.update(metadata)
        d.metadata.CopyFrom(s)
    for region_concepts in regions:
        r = d.regions.add()
        r.region_info.bounding_box.top_row = 0.1
        r.data.concepts.extend(
            resources_pb2.Concept(id=c, name=c, value=v) for c, v in region_concepts
        )
    if text:
        d.text.raw = text
    return d


def kept(out: resources_pb2.Data) -> bool:
    return bool(out.ListFields())


def ids(out: resources_pb2.Data) -> dict[str, float]:
    return {c.id: round(c.value, 4) for c in out.concepts}


def test_every_operator_type_has_an_implementation():
    assert registry.SUPPORTED == OPERATOR_TYPES


# ---- random-sample ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keep_fraction", "expected"),
    [(0, 0), (0.0, 0), (1, 1000), (1.0, 1000)],
)
def test_random_sample_edges_keep_none_or_all(keep_fraction, expected):
    d = data(text="x")
    n = sum(
        kept(
            run_operator("random-sample", d, {"keep_fraction": keep_fraction}, seed_key=f"cap-{i}")
        )
        for i in range(1000)
    )
    assert n == expected


def test_random_sample_keeps_about_the_fraction():
    d = data(text="x")
    n = sum(
        kept(run_operator("random-sample", d, {"keep_fraction": 0.3}, seed_key=f"cap-{i}"))
        for i in range(4000)
    )
    assert 1000 < n < 1400  # 1200 expected; binomial sd ~29


def test_random_sample_decision_is_deterministic_per_key():
    d = data(text="x")
    first = [
        kept(run_operator("random-sample", d, {"keep_fraction": 0.5}, seed_key=f"k{i}"))
        for i in range(200)
    ]
    again = [
        kept(run_operator("random-sample", d, {"keep_fraction": 0.5}, seed_key=f"k{i}"))
        for i in range(200)
    ]
    assert first == again
    assert 0 < sum(first) < 200


def test_random_sample_seed_changes_the_subset():
    d = data(text="x")
    a = [
        kept(
            run_operator("random-sample", d, {"keep_fraction": 0.5, "seed": "a"}, seed_key=f"k{i}")
        )
        for i in range(200)
    ]
    b = [
        kept(
            run_operator("random-sample", d, {"keep_fraction": 0.5, "seed": "b"}, seed_key=f"k{i}")
        )
        for i in range(200)
    ]
    assert a != b


def test_random_sample_draw_is_sha256_of_seed_and_key():
    import hashlib

    expected = int.from_bytes(hashlib.sha256(b"s1|capture-42").digest()[:8], "big") / 2**64
    assert sampling.draw("s1", "capture-42") == expected
    just_above = min(1.0, expected + 1e-9)
    assert kept(
        run_operator(
            "random-sample",
            data(text="x"),
            {"keep_fraction": just_above, "seed": "s1"},
            seed_key="capture-42",
        )
    )
    assert not kept(
        run_operator(
            "random-sample",
            data(text="x"),
            {"keep_fraction": expected, "seed": "s1"},
            seed_key="capture-42",
        )
    )


def test_random_sample_without_key_uses_the_content():
    a = [
        kept(run_operator("random-sample", data(text=f"t{i}"), {"keep_fraction": 0.5}))
        for i in range(100)
    ]
    b = [
        kept(run_operator("random-sample", data(text=f"t{i}"), {"keep_fraction": 0.5}))
        for i in range(100)
    ]
    assert a == b
    assert 0 < sum(a) < 100


def test_random_sample_passes_the_input_through_unchanged():
    d = data(concepts=[("cat", 0.9)], text="hello")
    assert run_operator("random-sample", d, {"keep_fraction": 1}, seed_key="k") == d


@pytest.mark.parametrize("bad", [-0.01, 1.01, "abc", True, None, float("nan"), [0.5]])
def test_random_sample_rejects_bad_keep_fraction(bad):
    with pytest.raises(ApiError) as exc:
        run_operator("random-sample", data(), {"keep_fraction": bad}, seed_key="k")
    assert exc.value.code == SC.MODEL_INVALID_ARGUMENT
    assert exc.value.field == "output_info.params.keep_fraction"


def test_random_sample_accepts_a_numeric_string():
    assert kept(run_operator("random-sample", data(text="x"), {"keep_fraction": "1"}, seed_key="k"))


# ---- metadata-filter -------------------------------------------------------------------------

META = {
    "source": "mobile",
    "camera": {"site": "north", "id": 7},
    "reviewed": False,
    "tags": ["a"],
    "a.b": 1,
}


@pytest.mark.parametrize(
    ("conditions", "match", "expected"),
    [
        ([], "all", True),
        ([{"key": "source", "op": "equals", "value": "mobile"}], "all", True),
        ([{"key": "source", "value": "mobile"}], "all", True),  # op defaults to equals
        ([{"key": "source", "op": "equals", "value": "web"}], "all", False),
        ([{"key": "camera.site", "op": "equals", "value": "north"}], "all", True),
        ([{"key": "camera.id", "op": "equals", "value": 7}], "all", True),
        ([{"key": "camera.id", "op": "equals", "value": "7"}], "all", False),  # no type coercion
        ([{"key": "reviewed", "op": "equals", "value": False}], "all", True),
        ([{"key": "reviewed", "op": "equals", "value": 0}], "all", False),  # false is not 0
        ([{"key": "tags", "op": "equals", "value": ["a"]}], "all", True),
        ([{"key": "a.b", "op": "equals", "value": 1}], "all", True),  # literal dotted key
        ([{"key": "camera"}], "all", True),  # op defaults to exists
        ([{"key": "camera.site", "op": "exists"}], "all", True),
        ([{"key": "missing", "op": "exists"}], "all", False),
        ([{"key": "missing", "op": "not_exists"}], "all", True),
        ([{"key": "source", "op": "not_exists"}], "all", False),
        ([{"key": "missing", "op": "equals", "value": None}], "all", False),
        ([{"key": "missing", "op": "not_equals", "value": "x"}], "all", True),
        ([{"key": "source", "op": "not_equals", "value": "mobile"}], "all", False),
        ([{"key": "camera.missing.deeper", "op": "equals", "value": 1}], "all", False),
        ([{"key": "source.deeper", "op": "exists"}], "all", False),  # through a non-object
        ([{"key": "source", "op": "in", "value": ["web", "mobile"]}], "all", True),
        ([{"key": "source", "values": ["web", "mobile"]}], "all", True),  # "values" means in
        ([{"key": "source", "op": "in", "value": ["web"]}], "all", False),
        ([{"key": "source", "op": "in", "value": []}], "all", False),
        ([{"key": "missing", "op": "in", "value": ["x"]}], "all", False),
        ([{"key": "source", "op": "not_in", "value": ["web"]}], "all", True),
        ([{"key": "missing", "op": "not_in", "value": ["x"]}], "all", True),
        (
            [{"key": "source", "value": "mobile"}, {"key": "camera.site", "value": "south"}],
            "all",
            False,
        ),
        (
            [{"key": "source", "value": "mobile"}, {"key": "camera.site", "value": "south"}],
            "any",
            True,
        ),
        ({"source": "mobile"}, "all", True),  # shorthand object: equality on each key
    ],
)
def test_metadata_filter_table(conditions, match, expected):
    out = run_operator(
        "metadata-filter", data(metadata=META, text="t"), {"conditions": conditions, "match": match}
    )
    assert kept(out) is expected


def test_metadata_filter_input_without_metadata():
    assert not kept(
        run_operator("metadata-filter", data(text="t"), {"conditions": [{"key": "source"}]})
    )
    assert kept(
        run_operator(
            "metadata-filter",
            data(text="t"),
            {"conditions": [{"key": "source", "op": "not_exists"}]},
        )
    )


@pytest.mark.parametrize(
    "params",
    [
        {"conditions": "source=mobile"},
        {"conditions": [{"op": "equals", "value": 1}]},
        {"conditions": [{"key": "", "value": 1}]},
        {"conditions": [{"key": "a", "op": "like", "value": 1}]},
        {"conditions": [{"key": "a", "op": "in", "value": "x"}]},
        {"conditions": [{"key": "a", "op": "equals"}]},
        {"conditions": ["a"]},
        {"conditions": [], "match": "some"},
    ],
)
def test_metadata_filter_rejects_bad_conditions(params):
    with pytest.raises(ApiError) as exc:
        run_operator("metadata-filter", data(), params)
    assert exc.value.code == SC.MODEL_INVALID_ARGUMENT
    assert exc.value.field.startswith("output_info.params.")


# ---- concept-thresholder ---------------------------------------------------------------------

PRED = [("cat", 0.9), ("dog", 0.5), ("car", 0.1)]


@pytest.mark.parametrize(
    ("thresholds", "threshold_type", "filter_others", "expected"),
    [
        ([{"id": "cat", "value": 0.9}], "GREATER_THAN", False, {"dog": 0.5, "car": 0.1}),
        ([{"id": "cat", "value": 0.9}], "GREATER_THAN", True, {}),  # equal is not greater
        ([{"id": "cat", "value": 0.9}], "GREATER_THAN_OR_EQUAL", True, {"cat": 0.9}),
        ([{"id": "cat", "value": 0.9}], 2, True, {"cat": 0.9}),
        ([{"id": "cat", "value": 0.9}], "EQUAL", True, {"cat": 0.9}),
        ([{"id": "cat", "value": 0.9}], 5, True, {"cat": 0.9}),
        ([{"id": "dog", "value": 0.5}], "LESS_THAN", True, {}),
        ([{"id": "dog", "value": 0.5}], "LESS_THAN_OR_EQUAL", True, {"dog": 0.5}),
        ([{"id": "dog", "value": 0.6}], 3, True, {"dog": 0.5}),
        ([{"id": "dog", "value": 0.6}], 4, True, {"dog": 0.5}),
        ([{"id": "cat", "value": 0.5}, {"id": "dog", "value": 0.5}], 1, True, {"cat": 0.9}),
        (
            [{"id": "cat", "value": 0.5}, {"id": "dog", "value": 0.5}],
            2,
            True,
            {"cat": 0.9, "dog": 0.5},
        ),
        ([{"id": "cat", "value": 0}], 1, True, {"cat": 0.9}),  # threshold 0
        ([{"id": "cat", "value": 1}], 1, True, {}),  # threshold 1
        ([{"id": "cat", "value": 1}], 3, True, {"cat": 0.9}),
        ([{"id": "cat", "value": 0.5}], None, True, {"cat": 0.9}),  # default GREATER_THAN
        ([{"id": "cat", "value": 0.5}], 0, True, {"cat": 0.9}),  # NOT_SET means GREATER_THAN
        ([{"id": "cat", "value": 0.5}], ">", True, {"cat": 0.9}),
        ([], 1, False, {"cat": 0.9, "dog": 0.5, "car": 0.1}),  # no thresholds: all pass
        ([], 1, True, {}),  # no thresholds and others filtered: dropped
    ],
)
def test_concept_thresholder_table(thresholds, threshold_type, filter_others, expected):
    params = {"filter_other_concepts": filter_others}
    if threshold_type is not None:
        params["concept_threshold_type"] = threshold_type
    out = run_operator("concept-thresholder", data(concepts=PRED), params, thresholds)
    assert ids(out) == expected
    assert kept(out) is bool(expected)


def test_concept_thresholder_empty_concept_list_is_dropped():
    out = run_operator("concept-thresholder", data(concepts=[]), {}, [{"id": "cat", "value": 0.5}])
    assert not kept(out)


def test_concept_thresholder_matches_by_name_and_keeps_other_fields():
    d = resources_pb2.Data(
        concepts=[resources_pb2.Concept(id="ai_123", name="cat", value=0.95)],
        text=resources_pb2.Text(raw="t"),
    )
    out = run_operator(
        "concept-thresholder",
        d,
        {"concept_threshold_type": "GREATER_THAN"},
        [{"id": "cat", "value": 0.9}],
    )
    assert [c.id for c in out.concepts] == ["ai_123"]
    assert out.text.raw == "t"


def test_concept_thresholder_filters_regions_and_removes_empty_ones():
    d = data(regions=[[("person", 0.95), ("dog", 0.2)], [("person", 0.3)]])
    out = run_operator(
        "concept-thresholder", d, {"concept_threshold_type": 1}, [{"id": "person", "value": 0.5}]
    )
    assert len(out.regions) == 1
    assert [(c.id, round(c.value, 2)) for c in out.regions[0].data.concepts] == [
        ("person", 0.95),
        ("dog", 0.2),
    ]
    out = run_operator(
        "concept-thresholder",
        d,
        {"concept_threshold_type": 1, "filter_other_concepts": True},
        [{"id": "person", "value": 0.99}],
    )
    assert not kept(out)


def test_concept_thresholder_does_not_change_its_input():
    d = data(concepts=PRED)
    before = d.SerializeToString()
    run_operator(
        "concept-thresholder", d, {"filter_other_concepts": True}, [{"id": "cat", "value": 0.5}]
    )
    assert d.SerializeToString() == before


@pytest.mark.parametrize(
    ("params", "concepts", "field"),
    [
        (
            {"concept_threshold_type": "BIGGER"},
            [{"id": "a", "value": 0.5}],
            "output_info.params.concept_threshold_type",
        ),
        (
            {"concept_threshold_type": 9},
            [{"id": "a", "value": 0.5}],
            "output_info.params.concept_threshold_type",
        ),
        ({}, [{"id": "a", "value": 1.5}], "output_info.params.value"),
        ({}, [{"value": 0.5}], "output_info.data.concepts"),
        ({"filter_other_concepts": "maybe"}, [], "output_info.params.filter_other_concepts"),
    ],
)
def test_concept_thresholder_rejects_bad_config(params, concepts, field):
    with pytest.raises(ApiError) as exc:
        run_operator("concept-thresholder", data(concepts=PRED), params, concepts)
    assert exc.value.code == SC.MODEL_INVALID_ARGUMENT
    assert exc.value.field.split(".")[-1] == field.split(".")[-1]


# ---- max-probability-below / -above ----------------------------------------------------------


@pytest.mark.parametrize(
    ("type_id", "threshold", "concepts", "expected"),
    [
        ("max-probability-below", 0.6, [("a", 0.5), ("b", 0.3)], True),
        ("max-probability-below", 0.5, [("a", 0.5), ("b", 0.3)], False),  # equal: not below
        ("max-probability-below", 0.4, [("a", 0.5), ("b", 0.3)], False),
        ("max-probability-below", 0.95, [("a", 0.95)], False),  # float32 0.95 equals 0.95
        ("max-probability-below", 0, [("a", 0.0)], False),
        ("max-probability-below", 1, [("a", 0.99)], True),
        ("max-probability-below", 1, [("a", 1.0)], False),
        ("max-probability-below", 0.5, [], False),  # no concepts: dropped
        ("max-probability-above", 0.9, [("a", 0.95), ("b", 0.1)], True),
        ("max-probability-above", 0.95, [("a", 0.95)], False),  # equal: not above
        ("max-probability-above", 0.9, [("a", 0.5), ("b", 0.8)], False),
        ("max-probability-above", 0, [("a", 0.01)], True),
        ("max-probability-above", 0, [("a", 0.0)], False),
        ("max-probability-above", 1, [("a", 1.0)], False),
        ("max-probability-above", 0.5, [], False),
    ],
)
def test_max_probability_table(type_id, threshold, concepts, expected):
    d = data(concepts=[(c, v) for c, v in concepts])
    out = run_operator(type_id, d, {"threshold": threshold})
    assert kept(out) is expected
    if expected:
        assert out == d  # passes the input through unchanged


def test_max_probability_uses_region_concepts_when_no_top_level_ones():
    d = data(regions=[[("person", 0.3)], [("dog", 0.97)]])
    assert kept(run_operator("max-probability-above", d, {"threshold": 0.9}))
    assert not kept(run_operator("max-probability-below", d, {"threshold": 0.9}))


@pytest.mark.parametrize("bad", [None, -1, 2, "x"])
def test_max_probability_requires_a_threshold_in_range(bad):
    params = {} if bad is None else {"threshold": bad}
    with pytest.raises(ApiError) as exc:
        run_operator("max-probability-below", data(concepts=[("a", 0.1)]), params)
    assert exc.value.field == "output_info.params.threshold"


# ---- mappers ---------------------------------------------------------------------------------

RELATIONS = [
    ("honey", "hyponym", "food", ""),  # honey is a kind of food
    ("fruit", "hypernym", "apple", ""),  # fruit is more general than apple
    ("puppy", "synonym", "dog", ""),
    ("cat", "synonym", "my-cat", "kg1"),
    ("kitty", "synonym", "cat", "kg2"),
]


@pytest.mark.parametrize(
    ("type_id", "kg", "concepts", "expected"),
    [
        ("concept-synonym-mapper", "", [("puppy", 0.8)], {"dog": 0.8}),
        ("concept-synonym-mapper", "", [("dog", 0.7)], {"puppy": 0.7}),  # symmetric
        ("concept-synonym-mapper", "", [("cat", 0.9)], {"my-cat": 0.9, "kitty": 0.9}),
        ("concept-synonym-mapper", "kg1", [("cat", 0.9)], {"my-cat": 0.9}),
        ("concept-synonym-mapper", "kg2", [("cat", 0.9)], {"kitty": 0.9}),
        ("concept-synonym-mapper", "kg3", [("cat", 0.9)], {}),
        ("concept-synonym-mapper", "", [("honey", 0.9)], {}),  # not a synonym relation
        ("concept-synonym-mapper", "", [], {}),
        ("concept-synonym-mapper", "", [("puppy", 0.4), ("unknown", 0.9)], {"dog": 0.4}),
        ("concept-hypernym-mapper", "", [("honey", 0.6)], {"food": 0.6}),
        ("concept-hypernym-mapper", "", [("apple", 0.5)], {"fruit": 0.5}),  # inverse of hypernym
        ("concept-hypernym-mapper", "", [("food", 0.6)], {}),
        ("concept-hyponym-mapper", "", [("food", 0.6)], {"honey": 0.6}),
        ("concept-hyponym-mapper", "", [("fruit", 0.3)], {"apple": 0.3}),
        ("concept-hyponym-mapper", "", [("honey", 0.6)], {}),
        ("concept-hyponym-mapper", "", [("puppy", 0.6)], {}),
    ],
)
def test_mapper_table(type_id, kg, concepts, expected):
    out = run_operator(
        type_id, data(concepts=concepts), {"knowledge_graph_id": kg}, relations=RELATIONS
    )
    assert ids(out) == expected
    assert kept(out) is bool(expected)


def test_mapper_keeps_the_highest_value_when_two_concepts_map_to_one():
    rel = [("puppy", "synonym", "dog", ""), ("hound", "synonym", "dog", "")]
    out = run_operator(
        "concept-synonym-mapper", data(concepts=[("puppy", 0.4), ("hound", 0.7)]), {}, relations=rel
    )
    assert ids(out) == {"dog": 0.7}


def test_mapper_maps_region_concepts():
    d = data(regions=[[("puppy", 0.9)], [("tree", 0.8)]])
    out = run_operator("concept-synonym-mapper", d, {}, relations=RELATIONS)
    assert len(out.regions) == 1
    assert out.regions[0].data.concepts[0].id == "dog"


def test_mapper_without_relations_drops_everything():
    assert not kept(
        run_operator("concept-hypernym-mapper", data(concepts=[("honey", 1.0)]), {}, relations=[])
    )


def test_unknown_operator_type_is_refused():
    with pytest.raises(ApiError):
        run_operator("no-such-operator", data(), {})


def test_check_operator_config_names_the_bad_field():
    registry.check_operator_config("random-sample", {"params": {"keep_fraction": 0.2}})
    registry.check_operator_config(
        "concept-thresholder", {"data": {"concepts": [{"id": "a", "value": 0.3}]}}
    )
    with pytest.raises(ApiError) as exc:
        registry.check_operator_config("max-probability-above", {"params": {}})
    assert exc.value.field == "output_info.params.threshold"
