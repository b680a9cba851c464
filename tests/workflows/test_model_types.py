"""The model type catalogue as the builder's generated forms use it."""

from __future__ import annotations

import pytest

from collectors_module.core.errors import ApiError
from collectors_module.workflows.model_types import (
    MODEL_TYPES,
    OPERATOR_TYPES,
    form_value,
    get_model_type,
    model_type_to_pb,
    output_info_from_form,
    parse_form_value,
)
from collectors_module.workflows.operators.registry import check_operator_config


def test_every_field_has_a_path_type_and_description():
    for spec in MODEL_TYPES:
        assert spec.title
        assert spec.description
        for f in spec.fields:
            assert f.path.startswith("output_info."), f
            assert f.description, f
            if f.type == "ENUM":
                assert f.options
            if f.type == "RANGE":
                assert f.min is not None
                assert f.max is not None
        pb = model_type_to_pb(spec)
        assert [x.path for x in pb.model_type_fields] == [f.path for f in spec.fields]


def test_defaults_of_every_operator_are_accepted_by_the_operator():
    for type_id in OPERATOR_TYPES:
        spec = get_model_type(type_id)
        info = output_info_from_form(spec, {})
        if type_id == "concept-thresholder":
            info["data"] = {"concepts": [{"id": "x", "value": 0.5}]}
        check_operator_config(type_id, info)


def test_form_texts_become_output_info():
    spec = get_model_type("concept-thresholder")
    info = output_info_from_form(
        spec,
        {
            "concepts": "cat: 0.8\ndog=0.5\n\nbird",
            "concept_threshold_type": "2",
            "filter_other_concepts": "on",
        },
    )
    assert info == {
        "data": {
            "concepts": [{"id": "cat", "value": 0.8}, {"id": "dog", "value": 0.5}, {"id": "bird"}]
        },
        "params": {
            "concept_threshold_type": "GREATER_THAN_OR_EQUAL",
            "filter_other_concepts": True,
        },
    }
    check_operator_config("concept-thresholder", info)
    meta = output_info_from_form(
        get_model_type("metadata-filter"),
        {"conditions": '[{"key": "a.b", "value": 1}]', "match": "any"},
    )
    assert meta == {"params": {"conditions": [{"key": "a.b", "value": 1}], "match": "any"}}
    sample = output_info_from_form(
        get_model_type("random-sample"), {"keep_fraction": "0.25", "seed": "s"}
    )
    assert sample == {"params": {"keep_fraction": 0.25, "seed": "s"}}


@pytest.mark.parametrize(
    ("type_id", "name", "text"),
    [
        ("random-sample", "keep_fraction", "1.5"),
        ("random-sample", "keep_fraction", "lots"),
        ("concept-thresholder", "concept_threshold_type", "BIGGER"),
        ("concept-thresholder", "filter_other_concepts", "maybe"),
        ("concept-thresholder", "concepts", "cat: high"),
        ("concept-thresholder", "concepts", "cat: 2"),
        ("concept-thresholder", "concepts", ": 0.5"),
        ("metadata-filter", "conditions", "[{"),
    ],
)
def test_bad_form_texts_name_their_field(type_id, name, text):
    spec = get_model_type(type_id)
    with pytest.raises(ApiError) as exc:
        output_info_from_form(spec, {name: text})
    assert exc.value.field == spec.field(name).path


def test_form_value_round_trips():
    for type_id, form in [
        (
            "concept-thresholder",
            {
                "concepts": "cat: 0.8\ndog: 0",
                "concept_threshold_type": "LESS_THAN",
                "filter_other_concepts": "true",
            },
        ),
        ("random-sample", {"keep_fraction": "0.3", "seed": "abc"}),
        ("metadata-filter", {"conditions": '[{"key": "x", "op": "exists"}]', "match": "all"}),
        ("max-probability-below", {"threshold": "0.4"}),
        ("concept-hypernym-mapper", {"knowledge_graph_id": "kg1"}),
    ]:
        spec = get_model_type(type_id)
        info = output_info_from_form(spec, form)
        shown = {f.name: form_value(f, info) for f in spec.fields}
        assert output_info_from_form(spec, shown) == info
    assert parse_form_value(get_model_type("random-sample").field("keep_fraction"), "") == 1.0
