"""The real Clarifai JSON client (clarifai-grpc 12.2.11) against a live server: inputs and workflows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from clarifai_grpc.grpc.api import resources_pb2

from collectors_module.inputs.models import Input

SCRIPT = Path(__file__).with_name("json_client_script.py")

# Needs protobuf < 7: clarifai-grpc 12.2.11's JSON client reads FieldDescriptor.label, which
# protobuf 7 removed (requirements.txt pins 6.33.6).


@pytest.fixture
def sampler_version(alice):
    """An operator model (random-sample, keeps everything) in alice's app, made by the service."""
    from collectors_module.inference.services import model_create

    pb = resources_pb2.Model(id="sampler", model_type_id="random-sample")
    pb.output_info.params.update({"keep_fraction": 1.0})
    return model_create(app=alice.app, model_pb=pb).latest_version()


@pytest.mark.django_db(transaction=True)
def test_clarifai_json_client_posts_and_lists_inputs_and_workflows(
    live_server, alice, sampler_version, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    cfg = {
        "pat": alice.secret,
        "user_id": "alice",
        "app_id": "app1",
        "image_url": "https://images.example.invalid/cat.jpg",
        "model_id": "sampler",
        "model_version_id": sampler_version.public_id,
    }
    env = {**os.environ, "CLARIFAI_API_BASE": live_server.url}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), json.dumps(cfg)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])

    posted = out["post_inputs"]
    assert posted["code"] == 10000, out
    assert posted["ids"] == ["jc-img", "jc-text", "jc-url"]
    assert posted["image_url"].endswith("/apps/app1/inputs/jc-img/media")
    assert posted["concepts"] == [["sky", 1.0], ["sea", 0.0]]
    assert out["post_duplicate"] == [30100, [30100]]
    listed = out["list_inputs"]
    assert listed["code"] == 10000
    assert sorted(listed["ids"]) == ["jc-img", "jc-text", "jc-url"]
    assert listed["text"] == ["hello from the JSON client"]
    assert listed["metadata"] == [{"via": "json-client"}]
    assert out["list_by_ids"] == [10000, ["jc-img", "jc-url"]]
    assert out["get_input"] == [10000, cfg["image_url"]]
    assert out["wrong_key"] == [11008, "Invalid API key or Invalid API key/application pair"]
    assert out["delete_inputs"] == 10000
    assert list(Input.objects.values_list("public_id", flat=True)) == ["jc-img"]

    assert out["post_workflows"][:2] == [10000, ["jc-workflow"]], out["post_workflows"]
    assert out["list_workflows"] == [10000, ["jc-workflow"], [["sampler"]]]
