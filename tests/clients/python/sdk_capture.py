"""The SDK side of the end-to-end capture test: predict with Clarifai's Python SDK, then read the
captured input and its collected outputs (annotations) back with the SDK.

argv[1]: JSON {"user_id", "app_id", "model_id", "text", "timeout"}. Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time

from clarifai.client.input import Inputs
from clarifai.client.model import Model
from google.protobuf.json_format import MessageToDict

cfg = json.loads(sys.argv[1])
model = Model(model_id=cfg["model_id"], user_id=cfg["user_id"], app_id=cfg["app_id"])
predicted = model.predict(text=cfg["text"])
out = {"predicted": [{"id": c.id, "value": round(c.value, 6)} for c in predicted]}

inputs = Inputs(user_id=cfg["user_id"], app_id=cfg["app_id"])
deadline = time.monotonic() + cfg["timeout"]
captured = []
while time.monotonic() < deadline:
    captured = list(inputs.list_inputs())
    if captured:
        break
    time.sleep(0.2)
out["inputs"] = [
    {
        "id": i.id,
        "text": i.data.text.raw,
        "collector": MessageToDict(i.data.metadata).get("collector", {}),
        "metadata_keys": sorted(MessageToDict(i.data.metadata)),
    }
    for i in captured
]
if captured:
    annotations = list(inputs.list_annotations(batch_input=captured[:1]))
    out["annotations"] = [
        {
            "id": a.id,
            "input_id": a.input_id,
            "model_version_id": a.model_version_id,
            "worker_model": a.worker.model.id,
            "concepts": [{"id": c.id, "value": round(c.value, 6)} for c in a.data.concepts],
        }
        for a in annotations
    ]
print(json.dumps(out))
