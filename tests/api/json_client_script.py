"""Run by tests/api/test_json_client.py in a subprocess: the real Clarifai JSON client.

CLARIFAI_API_BASE must be in the environment before clarifai_grpc.channel is imported (the
channel reads it as a default argument at import time), hence a separate process.
Prints one JSON object with what the server answered.
"""

import base64
import io
import json
import sys

from clarifai_grpc.channel.clarifai_channel import ClarifaiChannel
from clarifai_grpc.grpc.api import resources_pb2, service_pb2, service_pb2_grpc
from google.protobuf import json_format
from PIL import Image


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 12), (10, 120, 240)).save(buf, format="PNG")
    return buf.getvalue()


def main() -> None:
    cfg = json.loads(sys.argv[1])
    stub = service_pb2_grpc.V2Stub(ClarifaiChannel.get_json_channel())
    md = (("authorization", "Key " + cfg["pat"]),)
    uid = resources_pb2.UserAppIDSet(user_id=cfg["user_id"], app_id=cfg["app_id"])
    out: dict = {}

    image = resources_pb2.Input(id="jc-img")
    image.data.image.base64 = png()
    image.data.concepts.add(id="sky", name="sky", value=1.0)
    image.data.concepts.add(id="sea", name="sea", value=0.0)
    image.data.metadata.update({"via": "json-client"})
    text = resources_pb2.Input(id="jc-text")
    text.data.text.raw = "hello from the JSON client"
    url = resources_pb2.Input(id="jc-url")
    url.data.image.url = cfg["image_url"]
    r = stub.PostInputs(
        service_pb2.PostInputsRequest(user_app_id=uid, inputs=[image, text, url]), metadata=md
    )
    out["post_inputs"] = {
        "code": r.status.code,
        "ids": [i.id for i in r.inputs],
        "image_url": r.inputs[0].data.image.url if r.inputs else "",
        "concepts": [(c.id, c.value) for c in r.inputs[0].data.concepts] if r.inputs else [],
    }
    r = stub.PostInputs(service_pb2.PostInputsRequest(user_app_id=uid, inputs=[text]), metadata=md)
    out["post_duplicate"] = [r.status.code, [i.status.code for i in r.inputs]]

    r = stub.ListInputs(
        service_pb2.ListInputsRequest(user_app_id=uid, page=1, per_page=10), metadata=md
    )
    out["list_inputs"] = {
        "code": r.status.code,
        "ids": [i.id for i in r.inputs],
        "text": [i.data.text.raw for i in r.inputs if i.id == "jc-text"],
        "metadata": [
            json_format.MessageToDict(i.data.metadata) for i in r.inputs if i.id == "jc-img"
        ],
    }
    r = stub.ListInputs(
        service_pb2.ListInputsRequest(user_app_id=uid, ids=["jc-img", "jc-url"]), metadata=md
    )
    out["list_by_ids"] = [r.status.code, sorted(i.id for i in r.inputs)]
    r = stub.GetInput(service_pb2.GetInputRequest(user_app_id=uid, input_id="jc-url"), metadata=md)
    out["get_input"] = [r.status.code, r.input.data.image.url]

    node = resources_pb2.WorkflowNode(id="sample")
    node.model.id = cfg["model_id"]
    node.model.model_version.id = cfg["model_version_id"]
    workflow = resources_pb2.Workflow(id="jc-workflow", nodes=[node])
    r = stub.PostWorkflows(
        service_pb2.PostWorkflowsRequest(user_app_id=uid, workflows=[workflow]), metadata=md
    )
    out["post_workflows"] = [r.status.code, [w.id for w in r.workflows], r.status.details]
    r = stub.ListWorkflows(service_pb2.ListWorkflowsRequest(user_app_id=uid), metadata=md)
    out["list_workflows"] = [
        r.status.code,
        [w.id for w in r.workflows],
        [[n.model.id for n in w.nodes] for w in r.workflows],
    ]

    bad = (("authorization", "Key clct_not-a-real-key"),)
    r = stub.ListInputs(service_pb2.ListInputsRequest(user_app_id=uid), metadata=bad)
    out["wrong_key"] = [r.status.code, r.status.description]

    r = stub.DeleteInputs(
        service_pb2.DeleteInputsRequest(user_app_id=uid, ids=["jc-text", "jc-url"]), metadata=md
    )
    out["delete_inputs"] = r.status.code
    out["image_b64_len"] = len(base64.b64encode(png()))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
