"""Workflow versions (one per create and per patch, the newest current) and PatchWorkflows with
merge and remove as well as overwrite; bad patches change nothing."""

from __future__ import annotations

import pytest

from collectors_module.core.errors import SC
from collectors_module.workflows.models import Workflow, WorkflowVersion

from .conftest import SENTIMENT_VERSION, builtin_node, node

BASE = "/v2/users/alice/apps/app1"
WF = f"{BASE}/workflows"


@pytest.fixture
def sampler(api, alice):
    r = api.post(
        f"{BASE}/models",
        {
            "model": {
                "id": "sampler",
                "model_type_id": "random-sample",
                "output_info": {"params": {"keep_fraction": 1}},
            }
        },
        key=alice.secret,
    )
    assert r["status"]["code"] == SC.SUCCESS, r
    return r["model"]


def create(api, alice, *nodes, workflow_id="wf", **fields):
    r = api.post(
        WF, {"workflows": [{"id": workflow_id, "nodes": list(nodes), **fields}]}, key=alice.secret
    )
    assert r["status"]["code"] == SC.SUCCESS, r
    return r["workflows"][0]


def patch(api, alice, action, **workflow):
    return api.patch(
        WF, {"action": action, "workflows": [{"id": "wf", **workflow}]}, key=alice.secret
    )


def node_ids(api, alice) -> list[str]:
    return [n["id"] for n in api.get(f"{WF}/wf", key=alice.secret)["workflow"]["nodes"]]


def snapshot(alice) -> tuple:
    wf = Workflow.objects.get(app=alice.app, public_id="wf")
    return (
        wf.description,
        wf.metadata,
        list(wf.nodes.values_list("node_id", "node_inputs", "output_info_override")),
        WorkflowVersion.objects.filter(workflow=wf).count(),
    )


def test_every_create_and_patch_is_a_version_and_the_newest_is_current(api, alice, sampler):
    created = create(api, alice, node("s", "sampler"), description="v1")
    first = created["version"]["id"]
    assert len(first) == 32
    assert patch(api, alice, "overwrite", description="v2")["status"]["code"] == SC.SUCCESS
    r = patch(api, alice, "merge", nodes=[node("t", "sampler", inputs=["s"])])
    current = r["workflows"][0]["version"]["id"]
    versions = api.get(f"{WF}/wf/versions", key=alice.secret)
    assert versions["status"]["code"] == SC.SUCCESS
    listed = versions["workflow_versions"]
    assert listed[0]["id"] == current
    assert listed[-1]["id"] == first
    assert [v["is_deprecated"] for v in listed] == [False, True, True]
    assert [v["description"] for v in listed] == ["v2", "v2", "v1"]
    assert [[n["id"] for n in v["nodes"]] for v in listed] == [["s", "t"], ["s"], ["s"]]
    assert listed[0]["nodes"][0]["model"]["model_version"]["id"] == sampler["model_version"]["id"]
    assert api.get(f"{WF}/wf", key=alice.secret)["workflow"]["version"]["id"] == current
    got = api.get(f"{WF}/wf/versions/{first}", key=alice.secret)
    assert got["workflow_version"]["id"] == first
    assert got["workflow_version"]["is_deprecated"] is True
    assert got["workflow_version"]["workflow_id"] == "wf"
    page = api.get(f"{WF}/wf/versions", {"per_page": 1, "page": 3}, key=alice.secret)
    assert [v["id"] for v in page["workflow_versions"]] == [first]


def test_a_version_outlives_a_model_it_named(api, alice, sampler):
    create(api, alice, node("s", "sampler"))
    first = api.get(f"{WF}/wf", key=alice.secret)["workflow"]["version"]["id"]
    patch(api, alice, "overwrite", nodes=[builtin_node("m", "sentiment", SENTIMENT_VERSION)])
    assert api.delete(f"{BASE}/models/sampler", key=alice.secret)["status"]["code"] == SC.SUCCESS
    old = api.get(f"{WF}/wf/versions/{first}", key=alice.secret)["workflow_version"]
    assert old["nodes"][0]["model"]["id"] == "sampler"


def test_only_the_current_version_runs(api, alice, sampler):
    create(api, alice, node("s", "sampler"))
    first = api.get(f"{WF}/wf", key=alice.secret)["workflow"]["version"]["id"]
    patch(api, alice, "overwrite", description="again")
    body = {"inputs": [{"data": {"text": {"raw": "x"}}}]}
    r = api.post(f"{WF}/wf/versions/{first}/results", body, key=alice.secret)
    assert r["status"]["code"] == SC.WORKFLOW_INVALID_REQUEST
    assert "superseded" in r["status"]["details"]
    current = api.get(f"{WF}/wf", key=alice.secret)["workflow"]["version"]["id"]
    r = api.post(f"{WF}/wf/versions/{current}/results", body, key=alice.secret)
    assert r["status"]["code"] == SC.SUCCESS, r


def test_merge_replaces_nodes_by_id_appends_new_ones_and_merges_metadata(api, alice, sampler):
    create(api, alice, node("a", "sampler"), node("b", "sampler", inputs=["a"]), metadata={"x": 1})
    r = patch(
        api,
        alice,
        "merge",
        nodes=[
            node(
                "b",
                "sampler",
                inputs=["a"],
                output_info_override={"params": {"keep_fraction": 0.5}},
            ),
            node("c", "sampler", inputs=["b"]),
        ],
        metadata={"y": {"z": 2}},
    )
    assert r["status"]["code"] == SC.SUCCESS, r
    wf = r["workflows"][0]
    assert [n["id"] for n in wf["nodes"]] == ["a", "b", "c"]
    assert wf["nodes"][1]["output_info_override"]["params"] == {"keep_fraction": 0.5}
    assert wf["metadata"] == {"x": 1, "y": {"z": 2}}


def test_remove_takes_nodes_and_metadata_keys_out(api, alice, sampler):
    create(
        api,
        alice,
        node("a", "sampler"),
        node("b", "sampler", inputs=["a"]),
        node("c", "sampler"),
        metadata={"x": 1, "y": 2},
        description="d",
    )
    r = patch(
        api, alice, "remove", nodes=[node("b", "sampler")], metadata={"x": None}, description="d"
    )
    assert r["status"]["code"] == SC.SUCCESS, r
    wf = r["workflows"][0]
    assert [n["id"] for n in wf["nodes"]] == ["a", "c"]
    assert wf["metadata"] == {"y": 2}
    assert wf["description"] == ""


@pytest.mark.parametrize(
    ("action", "workflow", "code", "needle"),
    [
        (
            "remove",
            {"nodes": [node("a", "sampler")]},
            SC.WORKFLOW_INVALID_GRAPH,
            "takes input from 'a'",
        ),
        ("remove", {"nodes": [node("zz", "sampler")]}, SC.WORKFLOW_INVALID_GRAPH, "not a node"),
        (
            "remove",
            {"nodes": [node("a", "sampler"), node("b", "sampler")]},
            SC.WORKFLOW_INVALID_GRAPH,
            "without nodes",
        ),
        (
            "merge",
            {"nodes": [node("c", "sampler", inputs=["c"])]},
            SC.WORKFLOW_INVALID_GRAPH,
            "its own output",
        ),
        (
            "merge",
            {"nodes": [node("c", "no-such-model")]},
            SC.WORKFLOW_INVALID_GRAPH,
            "does not exist",
        ),
        (
            "merge",
            {"app_id": "elsewhere", "description": "x"},
            SC.WORKFLOW_INVALID_ARGUMENT,
            "app_id cannot be changed",
        ),
        (
            "merge",
            {"user_id": "bob", "description": "x"},
            SC.WORKFLOW_INVALID_ARGUMENT,
            "user_id cannot be changed",
        ),
        ("merge", {"notes": "x"}, SC.WORKFLOW_INVALID_ARGUMENT, "notes cannot be changed"),
        ("overwrite", {"visibility": {"gettable": 50}}, SC.WORKFLOW_INVALID_ARGUMENT, "private"),
        ("overwrite", {}, SC.WORKFLOW_INVALID_ARGUMENT, "nothing to patch"),
        ("merge", {"metadata": {"k": "a\u0000"}}, SC.WORKFLOW_INVALID_ARGUMENT, "NUL"),
    ],
)
def test_bad_patches_are_refused_and_change_nothing(
    api, alice, sampler, action, workflow, code, needle
):
    create(
        api, alice, node("a", "sampler"), node("b", "sampler", inputs=["a"]), metadata={"k": "v"}
    )
    before = snapshot(alice)
    r = patch(api, alice, action, **workflow)
    assert r["status"]["code"] == code, r
    assert needle in r["status"]["details"]
    assert snapshot(alice) == before


def test_a_batch_with_one_bad_workflow_changes_none(api, alice, sampler):
    create(api, alice, node("a", "sampler"))
    create(api, alice, node("a", "sampler"), workflow_id="other")
    before = snapshot(alice)
    r = api.patch(
        WF,
        {
            "action": "merge",
            "workflows": [
                {"id": "wf", "description": "changed"},
                {"id": "other", "nodes": [node("x", "missing-model")]},
            ],
        },
        key=alice.secret,
    )
    assert r["status"]["code"] == SC.WORKFLOW_INVALID_GRAPH
    assert snapshot(alice) == before
    r = api.patch(
        WF,
        {
            "action": "merge",
            "workflows": [{"id": "wf", "description": "c"}, {"id": "gone", "description": "c"}],
        },
        key=alice.secret,
    )
    assert r["status"]["code"] == SC.CONN_DOES_NOT_EXIST
    assert snapshot(alice) == before


def test_another_tenants_versions_do_not_exist(api, alice, bob, sampler):
    create(api, alice, node("a", "sampler"))
    version = api.get(f"{WF}/wf", key=alice.secret)["workflow"]["version"]["id"]
    for path in (f"{WF}/wf/versions", f"{WF}/wf/versions/{version}"):
        r = api.get(path, key=bob.secret)
        assert (r["_http"], r["status"]["code"]) == (404, SC.CONN_DOES_NOT_EXIST)
    r = api.get(f"/v2/users/bob/apps/bobapp/workflows/wf/versions/{version}", key=bob.secret)
    assert r["status"]["code"] == SC.CONN_DOES_NOT_EXIST
    assert api.get(f"{WF}/wf/versions/{'0' * 32}", key=alice.secret)["_http"] == 404
