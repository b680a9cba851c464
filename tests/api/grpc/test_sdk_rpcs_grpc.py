"""The RPCs Clarifai's SDKs call, over the live TLS gRPC server with the generated stub: statuses
travel in the response exactly as over REST."""

from __future__ import annotations

import pytest
from clarifai_grpc.grpc.api import resources_pb2, service_pb2

from collectors_module.core.errors import SC

pytestmark = pytest.mark.django_db(transaction=True)


def _md(tenant):
    return (("authorization", f"Key {tenant.secret}"),)


def test_users_apps_concepts_annotations_and_versions_over_grpc(stub, alice, bob):
    from collectors_module.inputs.services import input_create

    uid = resources_pb2.UserAppIDSet(user_id="alice", app_id="app1")
    md = _md(alice)
    assert stub.GetUser(service_pb2.GetUserRequest(user_app_id=uid), metadata=md).user.id == "alice"

    r = stub.PatchApp(
        service_pb2.PatchAppRequest(
            user_app_id=uid, app=resources_pb2.App(description="via grpc"), action="overwrite"
        ),
        metadata=md,
    )
    assert (r.status.code, r.app.description) == (SC.SUCCESS, "via grpc")
    r = stub.PatchApps(
        service_pb2.PatchAppsRequest(
            user_app_id=uid, apps=[resources_pb2.App(id="app1", description="x")], action="bogus"
        ),
        metadata=md,
    )
    assert r.status.code == SC.CONN_INVALID_REQUEST

    r = stub.PostConcepts(
        service_pb2.PostConceptsRequest(
            user_app_id=uid, concepts=[resources_pb2.Concept(id="cat")]
        ),
        metadata=md,
    )
    assert r.status.code == SC.SUCCESS
    r = stub.GetConcept(
        service_pb2.GetConceptRequest(user_app_id=uid, concept_id="cat"), metadata=md
    )
    assert r.concept.id == "cat"

    input_create(
        app=alice.app,
        input_pb=resources_pb2.Input(id="cap", data=resources_pb2.Data(text={"raw": "hi"})),
        annotations=[
            {
                "model_id": "sentiment",
                "model_version_id": "v" * 32,
                "data": {"concepts": [{"id": "positive", "value": 0.8}]},
            }
        ],
    )
    r = stub.ListAnnotations(
        service_pb2.ListAnnotationsRequest(user_app_id=uid, input_ids=["cap"]), metadata=md
    )
    assert [(a.input_id, a.model_version_id) for a in r.annotations] == [("cap", "v" * 32)]
    r = stub.ListAnnotations(
        service_pb2.ListAnnotationsRequest(user_app_id=uid, model_version_ids=["w" * 32]),
        metadata=md,
    )
    assert (r.status.code, len(r.annotations)) == (SC.SUCCESS, 0)

    bob_md = _md(bob)
    for call, request in (
        (stub.ListAnnotations, service_pb2.ListAnnotationsRequest(user_app_id=uid)),
        (stub.ListConcepts, service_pb2.ListConceptsRequest(user_app_id=uid)),
        (stub.GetUser, service_pb2.GetUserRequest(user_app_id=uid)),
        (stub.DeleteModels, service_pb2.DeleteModelsRequest(user_app_id=uid, delete_all=True)),
        (
            stub.ListWorkflowVersions,
            service_pb2.ListWorkflowVersionsRequest(user_app_id=uid, workflow_id="wf"),
        ),
    ):
        assert call(request, metadata=bob_md).status.code == SC.CONN_DOES_NOT_EXIST


def test_workflow_versions_and_model_delete_refusal_over_grpc(stub, alice):
    uid = resources_pb2.UserAppIDSet(user_id="alice", app_id="app1")
    md = _md(alice)
    model = resources_pb2.Model(
        id="mood",
        model_type_id="text-classifier",
        model_version=resources_pb2.ModelVersion(metadata={"runner": "builtin:sentiment"}),
    )
    version = stub.PostModels(
        service_pb2.PostModelsRequest(user_app_id=uid, models=[model]), metadata=md
    ).model.model_version
    assert [s.name for s in version.method_signatures] == ["predict"]
    node = resources_pb2.WorkflowNode(
        id="n", model=resources_pb2.Model(id="mood", model_version={"id": version.id})
    )
    wf = stub.PostWorkflows(
        service_pb2.PostWorkflowsRequest(
            user_app_id=uid, workflows=[resources_pb2.Workflow(id="wf", nodes=[node])]
        ),
        metadata=md,
    ).workflows[0]
    r = stub.PatchWorkflows(
        service_pb2.PatchWorkflowsRequest(
            user_app_id=uid,
            action="merge",
            workflows=[resources_pb2.Workflow(id="wf", description="merged")],
        ),
        metadata=md,
    )
    assert r.status.code == SC.SUCCESS
    versions = stub.ListWorkflowVersions(
        service_pb2.ListWorkflowVersionsRequest(user_app_id=uid, workflow_id="wf"), metadata=md
    ).workflow_versions
    assert [v.is_deprecated for v in versions] == [False, True]
    assert versions[1].id == wf.version.id
    r = stub.GetWorkflowVersion(
        service_pb2.GetWorkflowVersionRequest(
            user_app_id=uid, workflow_id="wf", workflow_version_id=wf.version.id
        ),
        metadata=md,
    )
    assert r.workflow_version.nodes[0].model.id == "mood"
    r = stub.DeleteModel(
        service_pb2.DeleteModelRequest(user_app_id=uid, model_id="mood"), metadata=md
    )
    assert r.status.code == SC.MODEL_INVALID_REQUEST
    assert "workflow 'wf'" in r.status.details
