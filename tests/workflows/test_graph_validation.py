"""Workflow create / overwrite / delete through the service: graph validation errors."""

from __future__ import annotations

import pytest

from collectors_module.core.errors import SC, ApiError
from collectors_module.workflows import selectors, services

from .conftest import COLOR_VERSION, builtin_node, node


@pytest.fixture
def ops(alice, make_operator):
    return {
        "sample": make_operator(alice.app, "sample", "random-sample", {"keep_fraction": 0.5}),
        "thresh": make_operator(
            alice.app,
            "thresh",
            "concept-thresholder",
            {"concept_threshold_type": "GREATER_THAN"},
            [{"id": "red", "value": 0.5}],
        ),
    }


def graph_error(app, pb) -> ApiError:
    with pytest.raises(ApiError) as exc:
        services.workflow_create(app=app, workflow_pb=pb)
    assert exc.value.code == SC.WORKFLOW_INVALID_GRAPH, exc.value
    return exc.value


def test_create_stores_nodes_in_order_with_their_inputs(alice, ops, workflow_pb):
    pb = workflow_pb(
        "wf",
        [
            builtin_node("colors", "color-recognition", COLOR_VERSION),
            node("th", "thresh", inputs=["colors"]),
            node("s", "sample", ops["sample"].public_id, inputs=["th"]),
        ],
        description="d",
        metadata={"team": "x"},
    )
    services.workflow_create(app=alice.app, workflow_pb=pb)
    wf = selectors.workflow_for_app(alice.app, "wf")
    assert [(n.node_id, n.node_inputs) for n in wf.nodes.all()] == [
        ("colors", []),
        ("th", ["colors"]),
        ("s", ["th"]),
    ]
    assert wf.nodes.all()[0].model_version.model.app.owner.username == "builtin"
    assert (wf.description, wf.metadata) == ("d", {"team": "x"})


def test_duplicate_workflow_id_is_refused_clearly(alice, ops, workflow_pb):
    services.workflow_create(app=alice.app, workflow_pb=workflow_pb("wf", [node("a", "sample")]))
    with pytest.raises(ApiError) as exc:
        services.workflow_create(
            app=alice.app, workflow_pb=workflow_pb("wf", [node("a", "sample")])
        )
    assert exc.value.code == SC.WORKFLOW_DUPLICATE
    assert "already exists" in exc.value.details
    assert exc.value.field == "id"


def test_same_workflow_id_in_two_apps_is_fine(alice, bob, make_operator, workflow_pb):
    make_operator(alice.app, "sample", "random-sample", {"keep_fraction": 1})
    make_operator(bob.app, "sample", "random-sample", {"keep_fraction": 1})
    services.workflow_create(app=alice.app, workflow_pb=workflow_pb("wf", [node("a", "sample")]))
    services.workflow_create(app=bob.app, workflow_pb=workflow_pb("wf", [node("a", "sample")]))


def test_cycle_is_an_invalid_graph_naming_a_node(alice, ops, workflow_pb):
    err = graph_error(
        alice.app,
        workflow_pb(
            "wf",
            [
                node("a", "sample", inputs=["c"]),
                node("b", "thresh", inputs=["a"]),
                node("c", "sample", inputs=["b"]),
            ],
        ),
    )
    assert "cycle" in err.details
    assert err.field in ("a", "b", "c")


def test_node_reading_itself_is_an_invalid_graph(alice, ops, workflow_pb):
    err = graph_error(alice.app, workflow_pb("wf", [node("a", "sample", inputs=["a"])]))
    assert err.field == "a"


def test_node_input_naming_a_missing_node_is_an_invalid_graph(alice, ops, workflow_pb):
    err = graph_error(
        alice.app, workflow_pb("wf", [node("a", "sample"), node("b", "sample", inputs=["zz"])])
    )
    assert err.field == "b"
    assert "'zz'" in err.details


def test_duplicate_node_ids_are_an_invalid_graph(alice, ops, workflow_pb):
    err = graph_error(alice.app, workflow_pb("wf", [node("a", "sample"), node("a", "thresh")]))
    assert err.field == "a"
    assert "twice" in err.details


def test_empty_and_bad_node_ids(alice, ops, workflow_pb):
    assert graph_error(alice.app, workflow_pb("wf", [])).field == "nodes"
    assert graph_error(alice.app, workflow_pb("wf", [node("", "sample")])).field == "nodes[0]"
    assert "invalid" in graph_error(alice.app, workflow_pb("wf", [node("a/b", "sample")])).details


def test_at_most_twenty_nodes(alice, ops, workflow_pb):
    twenty = [node(f"n{i}", "sample") for i in range(20)]
    services.workflow_create(app=alice.app, workflow_pb=workflow_pb("ok", twenty))
    err = graph_error(alice.app, workflow_pb("big", [*twenty, node("n20", "sample")]))
    assert "at most 20" in err.details


def test_missing_model_or_version_is_an_invalid_graph(alice, ops, workflow_pb):
    err = graph_error(alice.app, workflow_pb("wf", [node("a", "nope")]))
    assert err.field == "a"
    assert "'nope'" in err.details
    err = graph_error(alice.app, workflow_pb("wf", [node("a", "sample", "0" * 32)]))
    assert err.field == "a"
    err = graph_error(alice.app, workflow_pb("wf", [node("a", "")]))
    assert err.field == "a"


def test_another_tenants_private_model_is_an_invalid_graph(alice, bob, make_operator, workflow_pb):
    make_operator(bob.app, "bobs-sampler", "random-sample", {"keep_fraction": 1})
    pb = workflow_pb(
        "wf", [node("a", "bobs-sampler", model={"user_id": "bob", "app_id": "bobapp"})]
    )
    err = graph_error(alice.app, pb)
    assert err.field == "a"
    assert "does not exist or is not visible" in err.details


def test_public_builtin_models_are_usable_with_or_without_user_and_app(alice, workflow_pb):
    services.workflow_create(
        app=alice.app,
        workflow_pb=workflow_pb(
            "wf",
            [
                builtin_node("a", "color-recognition", COLOR_VERSION),
                node("b", "color-recognition", COLOR_VERSION),
                node("c", "ocr"),  # latest version
            ],
        ),
    )
    wf = selectors.workflow_for_app(alice.app, "wf")
    assert {n.model_version.public_id for n in wf.nodes.all()[:2]} == {COLOR_VERSION}


def test_bad_operator_parameters_are_an_invalid_graph_on_that_node(alice, ops, workflow_pb):
    bad = node("s", "sample", output_info_override={"params": {"keep_fraction": 2}})
    err = graph_error(alice.app, workflow_pb("wf", [node("ok", "sample"), bad]))
    assert err.field == "s"
    assert "keep_fraction" in err.details


def test_override_is_stored_and_applied(alice, ops, workflow_pb):
    n = node("s", "sample", output_info_override={"params": {"keep_fraction": 0}})
    services.workflow_create(app=alice.app, workflow_pb=workflow_pb("wf", [n]))
    wf = selectors.workflow_for_app(alice.app, "wf")
    assert wf.nodes.all()[0].output_info_override == {"params": {"keep_fraction": 0.0}}


def test_overwrite_replaces_nodes_and_keeps_what_is_not_given(alice, ops, workflow_pb):
    services.workflow_create(
        app=alice.app, workflow_pb=workflow_pb("wf", [node("a", "sample")], description="first")
    )
    services.workflow_overwrite(
        app=alice.app,
        workflow_pb=workflow_pb("wf", [node("x", "thresh"), node("y", "sample", inputs=["x"])]),
    )
    wf = selectors.workflow_for_app(alice.app, "wf")
    assert [n.node_id for n in wf.nodes.all()] == ["x", "y"]
    assert wf.description == "first"


def test_overwrite_with_a_bad_graph_changes_nothing(alice, ops, workflow_pb):
    services.workflow_create(app=alice.app, workflow_pb=workflow_pb("wf", [node("a", "sample")]))
    with pytest.raises(ApiError):
        services.workflow_overwrite(
            app=alice.app, workflow_pb=workflow_pb("wf", [node("x", "thresh", inputs=["x"])])
        )
    assert [n.node_id for n in selectors.workflow_for_app(alice.app, "wf").nodes.all()] == ["a"]


def test_overwrite_or_delete_of_a_missing_workflow_does_not_exist(alice, ops, workflow_pb):
    for call in (
        lambda: services.workflow_overwrite(
            app=alice.app, workflow_pb=workflow_pb("nope", [node("a", "sample")])
        ),
        lambda: services.workflow_delete(app=alice.app, workflow_id="nope"),
    ):
        with pytest.raises(ApiError) as exc:
            call()
        assert exc.value.code == SC.CONN_DOES_NOT_EXIST


def test_delete_removes_the_workflow_and_its_nodes(alice, ops, workflow_pb):
    from collectors_module.workflows.models import WorkflowNode

    services.workflow_create(app=alice.app, workflow_pb=workflow_pb("wf", [node("a", "sample")]))
    services.workflow_delete(app=alice.app, workflow_id="wf")
    assert not selectors.workflows_of_app(alice.app).exists()
    assert not WorkflowNode.objects.filter(workflow__app=alice.app).exists()


def test_a_batch_with_one_bad_workflow_creates_none(alice, ops, workflow_pb):
    with pytest.raises(ApiError):
        services.workflows_create(
            app=alice.app,
            workflow_pbs=[
                workflow_pb("good", [node("a", "sample")]),
                workflow_pb("bad", [node("a", "nope")]),
            ],
        )
    assert not selectors.workflows_of_app(alice.app).exists()


def test_workflow_used_by_a_collector_cannot_be_deleted(api, alice, ops, workflow_pb):
    from collectors_module.collectors.models import Collector

    wf = services.workflow_create(
        app=alice.app, workflow_pb=workflow_pb("pre", [node("a", "sample")])
    )
    colors = selectors.workflow_for_app(alice.app, "pre").nodes.all()[0].model_version
    Collector.objects.create(
        app=alice.app,
        public_id="col",
        pre_queue_workflow=wf,
        source_model_version=colors,
        model_user_id="alice",
        model_app_id="app1",
        model_id="sample",
        model_version_id=colors.public_id,
    )
    with pytest.raises(ApiError) as exc:
        services.workflow_delete(app=alice.app, workflow_id="pre")
    assert exc.value.code == SC.WORKFLOW_INVALID_REQUEST
    assert "'col'" in exc.value.details
    r = api.delete("/v2/users/alice/apps/app1/workflows", {"delete_all": True}, key=alice.secret)
    assert r["status"]["code"] == SC.WORKFLOW_INVALID_REQUEST
    assert selectors.workflows_of_app(alice.app).count() == 1
