"""Running workflows: fan-in, reuse of the captured prediction, keep / filtered_by, inline plans."""

from __future__ import annotations

import pytest
from clarifai_grpc.grpc.api import resources_pb2

from collectors_module.core.errors import SC
from collectors_module.workflows import executor, selectors, services

from .conftest import (
    COLOR_VERSION,
    OCR_VERSION,
    SENTIMENT_VERSION,
    builtin_node,
    data_pb,
    node,
    solid,
    text_image,
)


def image(raw: bytes) -> resources_pb2.Data:
    return resources_pb2.Data(image=resources_pb2.Image(base64=raw))


@pytest.fixture
def create(alice, workflow_pb):
    def make(workflow_id: str, nodes: list[dict]):
        services.workflow_create(app=alice.app, workflow_pb=workflow_pb(workflow_id, nodes))
        return selectors.workflow_for_app(alice.app, workflow_id)

    return make


def concept_values(data) -> dict[str, float]:
    return {c.id: round(c.value, 3) for c in data.concepts}


@pytest.fixture
def fan_in(alice, make_operator, create):
    make_operator(
        alice.app,
        "keep-cat",
        "concept-thresholder",
        {"concept_threshold_type": "GREATER_THAN", "filter_other_concepts": True},
        [{"id": "cat", "value": 0.8}],
    )
    make_operator(
        alice.app,
        "keep-low-car",
        "concept-thresholder",
        {"concept_threshold_type": "LESS_THAN", "filter_other_concepts": True},
        [{"id": "car", "value": 0.3}],
    )
    make_operator(alice.app, "confident", "max-probability-above", {"threshold": 0.5})
    return create(
        "fan",
        [
            node("a", "keep-cat"),
            node("b", "keep-low-car"),
            node("c", "confident", inputs=["a", "b"]),
        ],
    )


def test_fan_in_merges_the_outputs_of_both_parents(fan_in):
    [run] = executor.run_workflow(
        fan_in, [data_pb([("cat", 0.9), ("dog", 0.6), ("car", 0.2)])], seed_key="k"
    )
    assert [o.node_id for o in run.outputs] == ["a", "b", "c"]
    assert concept_values(run.output("a").data) == {"cat": 0.9}
    assert concept_values(run.output("b").data) == {"car": 0.2}
    assert concept_values(run.output("c").data) == {"cat": 0.9, "car": 0.2}
    assert run.keep
    assert run.filtered_by == ""


def test_fan_in_with_one_empty_parent_reads_the_other(fan_in):
    [run] = executor.run_workflow(fan_in, [data_pb([("cat", 0.5), ("car", 0.2)])])
    assert run.output("a").empty
    assert concept_values(run.output("c").data) == {}  # max 0.2 is not above 0.5
    assert not run.keep
    assert run.filtered_by == "a"  # a emptied its branch first; c then emptied the flow


def test_node_whose_parents_are_all_empty_is_skipped(fan_in):
    [run] = executor.run_workflow(fan_in, [data_pb([("dog", 0.9)])])
    assert run.output("c").skipped
    assert not run.keep
    assert run.filtered_by == "a"


def test_keep_and_filtered_by_with_random_sample(alice, make_operator, create):
    make_operator(alice.app, "none", "random-sample", {"keep_fraction": 0})
    make_operator(alice.app, "all", "random-sample", {"keep_fraction": 1})
    wf = create("rs", [node("first", "all"), node("second", "none", inputs=["first"])])
    [run] = executor.run_workflow(wf, [data_pb(text="hi")], seed_key="cap-1")
    assert (run.keep, run.filtered_by) == (False, "second")
    assert run.output("first").data.text.raw == "hi"


def test_random_sample_decisions_are_stable_per_seed_key(alice, make_operator, create):
    make_operator(alice.app, "half", "random-sample", {"keep_fraction": 0.5})
    wf = create("half", [node("s", "half")])
    inputs = [data_pb(text="same")] * 64
    keys = [f"capture-{i}" for i in range(64)]
    first = [r.keep for r in executor.run_workflow(wf, inputs, seed_keys=keys)]
    again = [r.keep for r in executor.run_workflow(wf, inputs, seed_keys=keys)]
    assert first == again
    assert 10 < sum(first) < 54


def test_source_prediction_is_reused_not_recomputed(alice, make_operator, create):
    from collectors_module.inference.services import run_model_version

    make_operator(
        alice.app,
        "red-only",
        "concept-thresholder",
        {"concept_threshold_type": "GREATER_THAN", "filter_other_concepts": True},
        [{"id": "red", "value": 0.5}],
    )
    wf = create(
        "reuse",
        [
            builtin_node("colors", "color-recognition", COLOR_VERSION),
            node("th", "red-only", inputs=["colors"]),
        ],
    )
    colors = wf.nodes.all()[0].model_version
    [red_output] = run_model_version(colors, [image(solid("red"))])
    assert concept_values(red_output)["red"] > 0.9

    # The captured prediction was made on a red image; the workflow runs on a blue one. Reused,
    # the colour node gives the red prediction (so the model did not run again) ...
    [run] = executor.run_workflow(wf, [image(solid("blue"))], precomputed={colors.pk: red_output})
    assert run.output("colors").reused
    assert run.output("colors").data == red_output
    assert run.keep
    # ... while without it the model runs on the blue image and the thresholder drops it.
    [run] = executor.run_workflow(wf, [image(solid("blue"))])
    assert not run.output("colors").reused
    assert run.output("colors").duration_ms > 0
    assert "blue" in concept_values(run.output("colors").data)
    assert (run.keep, run.filtered_by) == (False, "th")


def test_per_node_timing_is_recorded(alice, make_operator, create):
    make_operator(alice.app, "all", "random-sample", {"keep_fraction": 1})
    wf = create("t", [node("s", "all"), builtin_node("ocr", "ocr", OCR_VERSION, inputs=["s"])])
    [run] = executor.run_workflow(wf, [image(text_image("TIMING"))])
    assert run.output("s").duration_ms >= 0
    assert run.output("ocr").duration_ms > 1  # a real OCR run takes milliseconds


def test_fan_in_of_text_and_concepts_from_two_real_models(alice, create):
    wf = create(
        "mix",
        [
            builtin_node("read", "ocr", OCR_VERSION),
            builtin_node("colors", "color-recognition", COLOR_VERSION),
            builtin_node("mood", "sentiment", SENTIMENT_VERSION, inputs=["read", "colors"]),
        ],
    )
    [run] = executor.run_workflow(wf, [image(text_image("GREAT HAPPY DAY"))])
    assert "GREAT" in run.output("read").data.text.raw.upper()
    assert run.output("colors").data.concepts
    mood = concept_values(run.output("mood").data)
    assert max(mood, key=mood.get) == "positive"
    assert run.keep


def test_model_after_an_operator_looks_back_to_the_input_image(alice, make_operator, create):
    make_operator(
        alice.app,
        "mostly-white",
        "concept-thresholder",
        {"concept_threshold_type": "GREATER_THAN", "filter_other_concepts": True},
        [{"id": "white", "value": 0.5}],
    )
    wf = create(
        "look",
        [
            builtin_node("colors", "color-recognition", COLOR_VERSION),
            node("white", "mostly-white", inputs=["colors"]),
            builtin_node("read", "ocr", OCR_VERSION, inputs=["white"]),
        ],
    )
    [run] = executor.run_workflow(wf, [image(text_image("LOOK BACK"))])
    assert "LOOK" in run.output("read").data.text.raw.upper()
    [run] = executor.run_workflow(wf, [image(solid("black", (200, 100)))])
    assert run.output("read").skipped
    assert (run.keep, run.filtered_by) == (False, "white")


def test_a_failing_model_node_is_reported_with_its_status(alice, create):
    wf = create("fail", [builtin_node("mood", "sentiment", SENTIMENT_VERSION)])
    [run] = executor.run_workflow(wf, [image(solid("red"))])  # sentiment needs text
    assert run.status_code != SC.SUCCESS
    assert run.failed_node == "mood"
    assert not run.keep


def test_metadata_filter_reads_the_input_metadata_after_a_model(alice, make_operator, create):
    make_operator(
        alice.app,
        "north",
        "metadata-filter",
        {"conditions": [{"key": "camera.site", "value": "north"}]},
    )
    wf = create(
        "meta",
        [
            builtin_node("colors", "color-recognition", COLOR_VERSION),
            node("m", "north", inputs=["colors"]),
        ],
    )
    north, south = image(solid("red")), image(solid("red"))
    north.metadata.update({"camera": {"site": "north"}})
    south.metadata.update({"camera": {"site": "south"}})
    runs = executor.run_workflow(wf, [north, south])
    assert [r.keep for r in runs] == [True, False]
    assert runs[1].filtered_by == "m"


# --- inline admission -------------------------------------------------------------------------


@pytest.fixture
def prequeue(alice, make_operator, create):
    make_operator(
        alice.app,
        "red-hi",
        "concept-thresholder",
        {"concept_threshold_type": "GREATER_THAN_OR_EQUAL", "filter_other_concepts": True},
        [{"id": "red", "value": 0.6}],
    )
    make_operator(alice.app, "sample-all", "random-sample", {"keep_fraction": 1})
    return create(
        "pre",
        [
            builtin_node("colors", "color-recognition", COLOR_VERSION),
            node("th", "red-hi", inputs=["colors"]),
            node("s", "sample-all", inputs=["th"]),
        ],
    )


def test_inline_only_for_operators_and_the_source_model(prequeue, alice, make_operator, create):
    colors = prequeue.nodes.all()[0].model_version
    assert executor.is_inline(prequeue, colors)
    assert not executor.is_inline(prequeue, None)
    only_ops = create("ops", [node("s", "sample-all")])
    assert executor.is_inline(only_ops, None)
    assert executor.is_inline(only_ops, colors)
    with pytest.raises(ValueError, match="not inline"):
        executor.evaluate_inline(prequeue, data_pb([("red", 1.0)]), source_model_version=None)


def test_evaluate_inline_decides_on_the_model_output(prequeue):
    colors = prequeue.nodes.all()[0].model_version
    keep = executor.evaluate_inline(
        prequeue, data_pb([("red", 0.7), ("blue", 0.3)]), source_model_version=colors, seed_key="c1"
    )
    assert keep == (True, "")
    keep = executor.evaluate_inline(
        prequeue, data_pb([("red", 0.6)]), source_model_version=colors, seed_key="c2"
    )
    assert keep == (True, "")  # equal to the threshold with >=
    keep = executor.evaluate_inline(
        prequeue, data_pb([("red", 0.2), ("blue", 0.8)]), source_model_version=colors, seed_key="c3"
    )
    assert keep == (False, "th")
    assert executor.evaluate_inline(prequeue, data_pb([]), source_model_version=colors) == (
        False,
        "",
    )


def test_inline_and_full_run_agree(prequeue):
    colors = prequeue.nodes.all()[0].model_version
    for values in ([("red", 0.9)], [("red", 0.1)], [("blue", 0.99)]):
        output = data_pb(values)
        [run] = executor.run_workflow(
            prequeue, [image(solid("red"))], precomputed={colors.pk: output}, seed_key="x"
        )
        assert executor.evaluate_inline(
            prequeue, output, source_model_version=colors, seed_key="x"
        ) == (
            run.keep,
            run.filtered_by,
        )


def test_inline_evaluation_makes_no_query_once_planned(prequeue, django_assert_num_queries):
    colors = prequeue.nodes.all()[0].model_version
    executor.evaluate_inline(
        prequeue, data_pb([("red", 0.9)]), source_model_version=colors, seed_key="a"
    )
    with django_assert_num_queries(0):
        for i in range(50):
            executor.evaluate_inline(
                prequeue, data_pb([("red", 0.9)]), source_model_version=colors, seed_key=str(i)
            )


def test_inline_metadata_filter_reads_input_metadata(alice, make_operator, create):
    make_operator(
        alice.app,
        "lang",
        "metadata-filter",
        {"conditions": [{"key": "lang", "op": "in", "value": ["en", "fr"]}]},
    )
    wf = create("lang", [node("m", "lang")])
    en, de = data_pb(metadata={"lang": "en"}), data_pb(metadata={"lang": "de"})
    output = data_pb([("positive", 0.9)])
    assert executor.evaluate_inline(wf, output, input_data=en, seed_key="k") == (True, "")
    assert executor.evaluate_inline(wf, output, input_data=de, seed_key="k") == (False, "m")


def test_overwritten_workflow_gets_a_new_plan(alice, make_operator, create, workflow_pb):
    make_operator(alice.app, "none", "random-sample", {"keep_fraction": 0})
    make_operator(alice.app, "all", "random-sample", {"keep_fraction": 1})
    wf = create("swap", [node("s", "all")])
    assert executor.evaluate_inline(wf, data_pb(text="x"), seed_key="k") == (True, "")
    services.workflow_overwrite(app=alice.app, workflow_pb=workflow_pb("swap", [node("s", "none")]))
    wf = selectors.workflow_for_app(alice.app, "swap")
    assert executor.evaluate_inline(wf, data_pb(text="x"), seed_key="k") == (False, "s")


def test_mapper_follows_relations_added_after_the_plan_was_built(
    alice, make_operator, create, django_capture_on_commit_callbacks
):
    make_operator(alice.app, "syn", "concept-synonym-mapper", {"knowledge_graph_id": ""})
    wf = create("map", [node("m", "syn")])
    with django_capture_on_commit_callbacks(execute=True):
        services.relation_create(
            app=alice.app, subject_concept_id="puppy", object_concept_id="dog", predicate="synonym"
        )
    [run] = executor.run_workflow(wf, [data_pb([("puppy", 0.8)])])
    assert concept_values(run.output("m").data) == {"dog": 0.8}
    [run] = executor.run_workflow(wf, [data_pb([("kitten", 0.7)])])
    assert not run.keep
    with django_capture_on_commit_callbacks(execute=True):
        services.relation_create(
            app=alice.app,
            subject_concept_id="kitten",
            object_concept_id="my-cat",
            predicate="synonym",
        )
    [run] = executor.run_workflow(wf, [data_pb([("kitten", 0.7)])])
    assert concept_values(run.output("m").data) == {"my-cat": 0.7}


def test_knowledge_graph_mapping_from_builtin_concepts_to_custom_ones(
    alice, make_operator, create, django_capture_on_commit_callbacks
):
    """The product page's 'public model concepts -> custom model concepts' pre-queue workflow."""
    make_operator(alice.app, "to-custom", "concept-synonym-mapper", {"knowledge_graph_id": "brand"})
    make_operator(
        alice.app,
        "sure",
        "concept-thresholder",
        {"concept_threshold_type": "GREATER_THAN", "filter_other_concepts": True},
        [{"id": "brand-red", "value": 0.5}],
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.relation_create(
            app=alice.app,
            subject_concept_id="brand-red",
            object_concept_id="red",
            predicate="synonym",
            knowledge_graph_id="brand",
            object_app_id="main",
        )
        services.relation_create(
            app=alice.app,
            subject_concept_id="other-red",
            object_concept_id="red",
            predicate="synonym",
            knowledge_graph_id="other",
        )
    wf = create(
        "kg",
        [
            builtin_node("general", "color-recognition", COLOR_VERSION),
            node("mapper", "to-custom", inputs=["general"]),
            node("gt", "sure", inputs=["mapper"]),
        ],
    )
    [red, blue] = executor.run_workflow(wf, [image(solid("red")), image(solid("blue"))])
    assert concept_values(red.output("mapper").data).keys() == {"brand-red"}
    assert red.keep
    assert (blue.keep, blue.filtered_by) == (False, "mapper")


def test_model_node_override_params_reach_the_model(alice, create):
    limited = builtin_node("colors", "color-recognition", COLOR_VERSION)
    limited["output_info_override"] = {"params": {"max_concepts": 1}}
    wf = create("limited", [limited, builtin_node("all", "color-recognition", COLOR_VERSION)])
    [run] = executor.run_workflow(wf, [image(quarter_red())])
    assert len(run.output("colors").data.concepts) == 1
    assert len(run.output("all").data.concepts) >= 2


def quarter_red() -> bytes:
    import io

    from PIL import Image

    img = Image.new("RGB", (64, 64), "blue")
    img.paste("red", (0, 0, 32, 32))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_thresholder_with_a_zero_threshold_keeps_any_positive_value(alice, make_operator, create):
    make_operator(
        alice.app,
        "any-red",
        "concept-thresholder",
        {"concept_threshold_type": "GREATER_THAN", "filter_other_concepts": True},
        [{"id": "red", "value": 0.0}],
    )
    wf = create(
        "zero",
        [
            builtin_node("colors", "color-recognition", COLOR_VERSION),
            node("t", "any-red", inputs=["colors"]),
        ],
    )
    red, blue = executor.run_workflow(wf, [image(quarter_red()), image(solid("blue"))])
    assert [c.id for c in red.output("t").data.concepts] == ["red"]
    assert (blue.keep, blue.filtered_by) == (False, "t")


def test_node_depths_for_drawing_the_graph(fan_in):
    assert executor.node_depths(fan_in) == {"a": 0, "b": 0, "c": 1}


def test_run_on_inputs_prepares_inputs_like_the_predict_path(alice, create):
    wf = create("try", [builtin_node("read", "ocr", OCR_VERSION)])
    good = resources_pb2.Input(id="i1")
    good.data.image.base64 = text_image("TRY IT")
    bad = resources_pb2.Input(id="i2")
    bad.data.image.base64 = b"definitely not an image"
    first, second = executor.run_on_inputs(wf, [good, bad])
    assert "TRY" in first.output("read").data.text.raw.upper()
    assert second.code == SC.ALL_INPUT_INVALID_BYTES
