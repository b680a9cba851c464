"""The product page's five Python blocks run unchanged (placeholders filled) against a live TLS
gRPC server, and the same operations through the Clarifai JSON channel against the live REST server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from .product_page import code_blocks, fill, seed_doc


@pytest.fixture
def collector_setup(alice, make_key):
    """A model in alice's app (the page names model_user_id=USER_ID, model_app_id=APP_ID), a pre-queue
    and a post-queue workflow in the app, and a key that may post inputs there."""
    from clarifai_grpc.grpc.api import resources_pb2

    from collectors_module.core.ids import new_hex_id
    from collectors_module.inference.models import Model, ModelVersion
    from collectors_module.inference.services import model_create
    from collectors_module.workflows.services import workflow_create

    builtin_ocr = Model.objects.get(
        app__owner__username="builtin", app__public_id="main", public_id="ocr"
    )
    # alice's own production model: the built-in colour engine deployed in her app.
    mine = Model.objects.create(
        app=alice.app, public_id="my-colors", name="My colours", model_type_id="visual-classifier"
    )
    mine_version = ModelVersion.objects.create(
        model=mine, public_id=new_hex_id(), runner="builtin:color-recognition"
    )
    sampler = model_create(
        app=alice.app,
        model_pb=resources_pb2.Model(
            id="my-sampler",
            model_type_id="random-sample",
            output_info=resources_pb2.OutputInfo(params={"keep_fraction": 1.0}),
        ),
    )
    version = sampler.latest_version()

    def node(node_id, model_id, version_id, user_id="", app_id=""):
        return resources_pb2.WorkflowNode(
            id=node_id,
            model=resources_pb2.Model(
                id=model_id,
                user_id=user_id,
                app_id=app_id,
                model_version=resources_pb2.ModelVersion(id=version_id),
            ),
        )

    workflow_create(
        app=alice.app,
        workflow_pb=resources_pb2.Workflow(
            id="pre-wf", nodes=[node("sample", "my-sampler", version.public_id)]
        ),
    )
    workflow_create(
        app=alice.app,
        workflow_pb=resources_pb2.Workflow(
            id="post-wf",
            nodes=[node("ocr", "ocr", builtin_ocr.latest_version().public_id, "builtin", "main")],
        ),
    )
    post_key = make_key(alice.user, scopes=["All"], description="post inputs")
    return {
        "USER_ID": "alice",
        "PAT": alice.secret,
        "APP_ID": "app1",
        "COLLECTOR_ID": "page-collector",
        "COLLECTOR_DESCRIPTION": "from the product page",
        "PRE_QUEUE_WORKFLOW_ID": "pre-wf",
        "POST_QUEUE_WORKFLOW_ID": "post-wf",
        "MODEL_ID": "my-colors",
        "MODEL_VERSION_ID": mine_version.public_id,
        "POST_INPUTS_KEY_ID": post_key.key.public_id,
        "CALLER_USER_ID": "alice",
        "COLLECTOR_ID_1": "page-collector",
        "COLLECTOR_ID_2": "page-collector-2",
    }


def run_block(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.skipif(
    seed_doc() is None, reason="shared/reference/collectors-seed-doc.txt is not beside the repo"
)
def test_product_page_blocks_run_unchanged_over_tls(grpc_server, dev_certs, collector_setup):
    from collectors_module.collectors.models import Collector

    blocks = code_blocks(seed_doc().read_text())
    assert len(blocks) == 5
    add, update, list_, get, delete = (fill(b, collector_setup) for b in blocks)
    env = {
        **os.environ,
        "CLARIFAI_GRPC_BASE": grpc_server,
        "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": str(dev_certs["ca"]),
    }

    for name, code in (("add", add), ("update", update), ("list", list_), ("get", get)):
        done = run_block(code, env)
        assert done.returncode == 0, f"{name} block failed:\n{done.stdout}\n{done.stderr}"
        if name in ("list", "get"):
            assert 'id: "page-collector"' in done.stdout

    collector = Collector.objects.get(app=collector_setup_app(), public_id="page-collector")
    assert collector.description == "from the product page"
    assert collector.pre_queue_workflow.public_id == "pre-wf"
    assert collector.post_queue_workflow.public_id == "post-wf"

    # The delete block names two collectors; make the second exist so both are deleted.
    env_second = dict(env)
    assert (
        run_block(
            fill(blocks[0], {**collector_setup, "COLLECTOR_ID": "page-collector-2"}), env_second
        ).returncode
        == 0
    )
    done = run_block(delete, env)
    assert done.returncode == 0, done.stderr
    assert not Collector.objects.filter(
        public_id__in=["page-collector", "page-collector-2"]
    ).exists()


def collector_setup_app():
    from collectors_module.applications.models import App

    return App.objects.get(owner__username="alice", public_id="app1")


JSON_CLIENT = textwrap.dedent(
    """
    import json, os, sys
    from clarifai_grpc.channel.clarifai_channel import ClarifaiChannel
    from clarifai_grpc.grpc.api import resources_pb2, service_pb2, service_pb2_grpc
    cfg = json.loads(sys.argv[1])
    stub = service_pb2_grpc.V2Stub(ClarifaiChannel.get_json_channel())
    md = (("authorization", "Key " + cfg["PAT"]),)
    uid = resources_pb2.UserAppIDSet(user_id=cfg["USER_ID"], app_id=cfg["APP_ID"])
    src = resources_pb2.APIPostModelOutputsCollectorSource(
        model_user_id=cfg["USER_ID"], model_app_id=cfg["APP_ID"], model_id=cfg["MODEL_ID"],
        model_version_id=cfg["MODEL_VERSION_ID"], post_inputs_key_id=cfg["POST_INPUTS_KEY_ID"],
        caller_user_id=cfg["CALLER_USER_ID"])
    col = resources_pb2.Collector(id="json-collector", description="via json",
        pre_queue_workflow_id=cfg["PRE_QUEUE_WORKFLOW_ID"],
        collector_source=resources_pb2.CollectorSource(api_post_model_outputs_collector_source=src))
    out = {}
    out["post"] = stub.PostCollectors(service_pb2.PostCollectorsRequest(user_app_id=uid, collectors=[col]), metadata=md).status.code
    col.description = "patched"
    out["patch"] = stub.PatchCollectors(service_pb2.PatchCollectorsRequest(user_app_id=uid, collectors=[col], action="overwrite"), metadata=md).status.code
    r = stub.ListCollectors(service_pb2.ListCollectorsRequest(user_app_id=uid), metadata=md)
    out["list"] = [r.status.code, [c.id for c in r.collectors]]
    r = stub.GetCollector(service_pb2.GetCollectorRequest(user_app_id=uid, collector_id="json-collector"), metadata=md)
    out["get"] = [r.status.code, r.collector.description, r.collector.status.code]
    out["delete"] = stub.DeleteCollectors(service_pb2.DeleteCollectorsRequest(user_app_id=uid, ids=["json-collector"]), metadata=md).status.code
    print(json.dumps(out))
    """
)


def test_same_operations_through_the_json_channel(live_server, collector_setup):
    env = {**os.environ, "CLARIFAI_API_BASE": live_server.url}
    done = subprocess.run(
        [sys.executable, "-c", JSON_CLIENT, json.dumps(collector_setup)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["post"] == 10000
    assert out["patch"] == 10000
    assert out["list"] == [10000, ["json-collector"]]
    assert out["get"] == [10000, "patched", 52001]
    assert out["delete"] == 10000
