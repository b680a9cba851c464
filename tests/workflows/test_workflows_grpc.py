"""Workflows over gRPC with the real Clarifai client (TLS), on the same dispatch as REST."""

from __future__ import annotations

from clarifai_grpc.grpc.api import resources_pb2, service_pb2
from google.protobuf import struct_pb2

from .conftest import OCR_VERSION, SENTIMENT_VERSION, text_image


def test_build_and_run_a_workflow_over_grpc(stub, alice):
    md = (("authorization", f"Key {alice.secret}"),)
    uid = resources_pb2.UserAppIDSet(user_id="alice", app_id="app1")

    r = stub.ListModelTypes(service_pb2.ListModelTypesRequest(user_app_id=uid), metadata=md)
    assert r.status.code == 10000
    assert "random-sample" in [t.id for t in r.model_types]

    params = struct_pb2.Struct()
    params.update({"keep_fraction": 1.0})
    r = stub.PostModels(
        service_pb2.PostModelsRequest(
            user_app_id=uid,
            model=resources_pb2.Model(
                id="keep-all",
                model_type_id="random-sample",
                output_info=resources_pb2.OutputInfo(params=params),
            ),
        ),
        metadata=md,
    )
    assert r.status.code == 10000, r.status

    def node(node_id, model_id, version_id="", inputs=(), user_id="", app_id=""):
        n = resources_pb2.WorkflowNode(
            id=node_id,
            model=resources_pb2.Model(
                id=model_id,
                user_id=user_id,
                app_id=app_id,
                model_version=resources_pb2.ModelVersion(id=version_id),
            ),
        )
        n.node_inputs.extend(resources_pb2.NodeInput(node_id=i) for i in inputs)
        return n

    workflow = resources_pb2.Workflow(
        id="grpc-wf",
        nodes=[
            node("keep", "keep-all"),
            node("read", "ocr", OCR_VERSION, ["keep"], "builtin", "main"),
            node("mood", "sentiment", SENTIMENT_VERSION, ["read"], "builtin", "main"),
        ],
    )
    r = stub.PostWorkflows(
        service_pb2.PostWorkflowsRequest(user_app_id=uid, workflows=[workflow]), metadata=md
    )
    assert r.status.code == 10000, r.status

    inp = resources_pb2.Input(
        id="g1",
        data=resources_pb2.Data(image=resources_pb2.Image(base64=text_image("GOOD FUN DAY"))),
    )
    r = stub.PostWorkflowResults(
        service_pb2.PostWorkflowResultsRequest(
            user_app_id=uid, workflow_id="grpc-wf", inputs=[inp]
        ),
        metadata=md,
    )
    assert r.status.code == 10000, r.status
    [result] = r.results
    assert [o.model.id for o in result.outputs] == ["keep-all", "ocr", "sentiment"]
    mood = {c.id: c.value for c in result.outputs[2].data.concepts}
    assert max(mood, key=mood.get) == "positive"

    rel = resources_pb2.ConceptRelation(
        object_concept=resources_pb2.Concept(id="happy"), predicate="synonym"
    )
    r = stub.PostConceptRelations(
        service_pb2.PostConceptRelationsRequest(
            user_app_id=uid, concept_id="positive", concept_relations=[rel]
        ),
        metadata=md,
    )
    assert r.status.code == 10000, r.status
    r = stub.ListConceptRelations(
        service_pb2.ListConceptRelationsRequest(user_app_id=uid, concept_id="happy"), metadata=md
    )
    assert [(x.subject_concept.id, x.object_concept.id) for x in r.concept_relations] == [
        ("happy", "positive")
    ]
