"""The Node.js client (clarifai-nodejs-grpc 11.11.0, installed with npm) against a live TLS gRPC
server: the product page's five collector operations written in JavaScript, and a model created
with a google.protobuf.Struct in the client's camelCase spelling."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def page_setup(alice, make_key):
    """alice's own colour model, a pre- and a post-queue workflow, and a key to post inputs."""
    from clarifai_grpc.grpc.api import resources_pb2

    from collectors_module.inference.services import model_create
    from collectors_module.workflows.services import workflow_create

    model = model_create(
        app=alice.app,
        model_pb=resources_pb2.Model(
            id="my-colors",
            model_type_id="visual-classifier",
            model_version=resources_pb2.ModelVersion(
                metadata={"runner": "builtin:color-recognition"}
            ),
        ),
    )
    sampler = model_create(
        app=alice.app,
        model_pb=resources_pb2.Model(
            id="sampler",
            model_type_id="random-sample",
            output_info=resources_pb2.OutputInfo(params={"keep_fraction": 1.0}),
        ),
    )
    for workflow_id, target in (("pre-wf", sampler), ("post-wf", model)):
        workflow_create(
            app=alice.app,
            workflow_pb=resources_pb2.Workflow(
                id=workflow_id,
                nodes=[
                    resources_pb2.WorkflowNode(
                        id="n",
                        model=resources_pb2.Model(
                            id=target.public_id,
                            model_version=resources_pb2.ModelVersion(
                                id=target.latest_version().public_id
                            ),
                        ),
                    )
                ],
            ),
        )
    return {
        "USER_ID": "alice",
        "PAT": alice.secret,
        "APP_ID": alice.app.public_id,
        "COLLECTOR_ID": "js-collector",
        "COLLECTOR_ID_2": "js-collector-2",
        "COLLECTOR_DESCRIPTION": "made from JavaScript",
        "NEW_DESCRIPTION": "updated from JavaScript",
        "PRE_QUEUE_WORKFLOW_ID": "pre-wf",
        "POST_QUEUE_WORKFLOW_ID": "post-wf",
        "MODEL_ID": "my-colors",
        "MODEL_VERSION_ID": model.latest_version().public_id,
        "POST_INPUTS_KEY_ID": make_key(alice.user, description="post inputs").key.public_id,
        "CALLER_USER_ID": "alice",
    }


def test_product_page_operations_in_javascript(run_node, page_setup):
    from collectors_module.collectors.models import Collector
    from collectors_module.core.errors import SC

    out = run_node("product_page.js", page_setup)
    assert out["add"] == {"code": SC.SUCCESS, "ids": ["js-collector"]}
    assert out["update"] == {"code": SC.SUCCESS, "description": "updated from JavaScript"}
    assert out["list"] == ["js-collector"]
    assert out["get"] == {
        "id": "js-collector",
        "description": "updated from JavaScript",
        "status": SC.COLLECTOR_ACTIVE,
        "model_version_id": page_setup["MODEL_VERSION_ID"],
        "caller_user_id": "alice",
    }
    assert out["delete"] == SC.SUCCESS
    assert out["after_delete"] == []
    assert out["missing"] == SC.CONN_DOES_NOT_EXIST
    assert out["bad_action"] == SC.CONN_INVALID_REQUEST
    assert not Collector.objects.exists()


def test_struct_fields_in_camel_case_reach_the_server(run_node, alice, make_key):
    from collectors_module.collectors.models import Collector
    from collectors_module.inference.models import Model

    out = run_node(
        "collector_and_model.js",
        {
            "USER_ID": "alice",
            "PAT": alice.secret,
            "APP_ID": alice.app.public_id,
            "MODEL_ID": "js-sentiment",
            "COLLECTOR_ID": "js-sentiment-collector",
            "POST_INPUTS_KEY_ID": make_key(alice.user).key.public_id,
            "CALLER_USER_ID": "alice",
        },
    )
    assert out["model"]["code"] == 10000, out
    assert out["runner"] == "builtin:sentiment"
    assert out["signatures"] == [{"name": "predict", "inputs": ["text"]}]
    assert out["collector"]["code"] == 10000, out
    version = Model.objects.get(app=alice.app, public_id="js-sentiment").latest_version()
    assert version.runner == "builtin:sentiment"
    assert version.public_id == out["version_id"]
    collector = Collector.objects.get(app=alice.app, public_id="js-sentiment-collector")
    assert collector.collect_outputs
    assert collector.source_model_version == version
