"""`seed_demo` on the test database: the demo collector is the product page's example."""

from __future__ import annotations

import io
import json
import re

from django.core.management import call_command

from collectors_module.inference.runners.builtin import GENERAL_IMAGE_RECOGNITION_VERSION


def _seed(tmp_path) -> dict[str, str]:
    out = io.StringIO()
    call_command("seed_demo", state_dir=str(tmp_path), stdout=out, stderr=io.StringIO())
    return dict(re.findall(r"^([a-z ]+):\s+(.*)$", out.getvalue(), flags=re.M))


def test_demo_collector_captures_general_image_recognition_and_captions(db, tmp_path):
    from collectors_module.collectors.models import Collector

    fields = _seed(tmp_path)
    c = Collector.objects.get(public_id="demo-collector")
    assert (c.model_user_id, c.model_app_id, c.model_id) == (
        "clarifai",
        "main",
        "general-image-recognition",
    )
    assert c.model_version_id == GENERAL_IMAGE_RECOGNITION_VERSION
    assert c.post_queue_workflow.public_id == "image-to-text"
    [node] = c.post_queue_workflow.nodes.all()
    assert node.model_version.model.public_id == "general-english-image-caption"
    assert c.collect_outputs
    assert c.is_active
    body = json.loads((tmp_path / "demo_predict.json").read_text())
    assert len(body["inputs"]) == 1
    assert fields["request"] == str((tmp_path / "demo_predict.json").resolve())


def test_an_older_demo_collector_on_the_colour_model_is_brought_up_to_date(db, tmp_path):
    from clarifai_grpc.grpc.api import resources_pb2

    from collectors_module.collectors.models import Collector
    from collectors_module.collectors.services import collector_create

    _seed(tmp_path)
    c = Collector.objects.get(public_id="demo-collector")
    owner, app, key = c.app.owner, c.app, c.post_inputs_key
    c.delete()
    old = resources_pb2.Collector(id="demo-collector", pre_queue_random_sample=1.0)
    src = old.collector_source.api_post_model_outputs_collector_source
    src.model_user_id, src.model_app_id, src.model_id = "builtin", "main", "color-recognition"
    src.caller_user_id, src.post_inputs_key_id = owner.username, key.public_id
    collector_create(app=app, actor=owner, collector_pb=old)

    fields = _seed(tmp_path)
    assert "updated" in fields["collector"]
    c = Collector.objects.get(public_id="demo-collector")
    assert c.model_id == "general-image-recognition"
    assert c.post_queue_workflow.public_id == "image-to-text"
    assert "exists; active" in _seed(tmp_path)["collector"]
