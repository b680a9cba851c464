"""Clarifai's Python SDK (clarifai 12.4.1, unchanged, in its own virtual environment) against a
live TLS gRPC server: the everyday calls of users, apps, models (the model client and the proto
calls, on every built-in model and a remote one), concepts, inputs, annotations and workflows,
plus the refusals it must get (unknown actions, fields that cannot change, deleting a model in
use, another user's app). The script reports each operation by name; every one must pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from .caption_server import CaptionServer
from .images import write_images

SCRIPT = Path(__file__).resolve().parent / "python" / "sdk_everyday.py"

pytestmark = pytest.mark.django_db(transaction=True)

# Every operation the script runs, in order (a renamed or dropped one fails the test).
OPERATIONS = [
    "User.get_user_info",
    "User.create_app",
    "User.list_apps",
    "User.app",
    "User.patch_app",
    "User.patch_app refuses an unknown action",
    "User.patch_app refuses a field it cannot change",
    "User.list_models",
    "App.list_models",
    "Model.list_versions",
    "Model.available_methods and method_signature",
    "Model.predict(image=...) color-recognition",
    "Model.predict(Image) positional, versioned model",
    "Model.predict batch of dicts",
    "Model.predict(image=...) ocr",
    "Model.predict(image=...) qr-code",
    "Model.predict(text=...) sentiment",
    "Model.predict with_proto",
    "Model.async_predict",
    "Model.predict_by_bytes color-recognition",
    "Model.predict_by_bytes without input_type (GetModelType)",
    "Model.predict_by_bytes output_config",
    "Model.predict_by_bytes ocr",
    "Model.predict_by_bytes qr-code",
    "Model.predict_by_bytes sentiment",
    "Model.predict with raw Input protos",
    "App.create_model (remote openai-chat)",
    "Model.predict(image=...) remote model",
    "App.create_concepts",
    "App.list_concepts",
    "App.create_concepts refuses a duplicate",
    "Inputs.patch_concepts",
    "App.create_concept_relations",
    "App.search_concept_relations",
    "App.delete_concept_relations",
    "Inputs.upload_from_bytes",
    "Inputs.upload_text",
    "Inputs.upload_from_url",
    "Inputs.list_inputs",
    "App.get_input_count",
    "Inputs.get_input",
    "Inputs.download_inputs",
    "Inputs.upload_annotations",
    "Inputs.list_annotations",
    "Inputs.patch_annotations (merge)",
    "Inputs.delete_annotations",
    "Inputs.delete_inputs",
    "App.create_workflow (YAML)",
    "App.list_workflows",
    "App.patch_workflow (merge, the SDK's default)",
    "Workflow.predict_by_bytes",
    "Workflow.predict",
    "Workflow.export",
    "App.patch_workflow (overwrite)",
    "App.patch_workflow (remove)",
    "App.patch_workflow refuses an unknown action",
    "Workflow.list_versions",
    "App.delete_workflow",
    "App.create_model (built-in runner)",
    "App.model and Model.predict on the app's model",
    "App.delete_model refused while a workflow uses it",
    "App.delete_model",
    "another user's app does not exist",
    "User.delete_app",
]


@pytest.fixture
def caption_model(settings, monkeypatch):
    """A remote vision model endpoint on loopback, allow-listed as an operator would."""
    server = CaptionServer()
    monkeypatch.delenv("REMOTE_MODEL_ALLOWED_ENDPOINTS", raising=False)
    settings.REMOTE_MODEL_ALLOWED_ENDPOINTS = [f"{server.base}/v1/"]
    yield server
    server.close()


@pytest.fixture
def media_host(live_server, settings, monkeypatch):
    """Input media URLs point at a live web server, so the SDK can download them."""
    monkeypatch.delenv("COLLECTORS_PUBLIC_URL", raising=False)
    settings.COLLECTORS_PUBLIC_URL = live_server.url
    return live_server.url


def test_python_sdk_everyday_operations(
    run_sdk, alice, bob, make_app, caption_model, media_host, tmp_path
):
    from clarifai_grpc.grpc.api import resources_pb2

    from collectors_module.applications.models import App
    from collectors_module.inference.models import Model
    from collectors_module.inference.services import model_create

    model_create(
        app=bob.app,
        model_pb=resources_pb2.Model(
            id="bob-model",
            model_type_id="text-classifier",
            model_version=resources_pb2.ModelVersion(metadata={"runner": "builtin:sentiment"}),
        ),
    )
    cfg = {
        **write_images(tmp_path),
        "user_id": "alice",
        "app_id": alice.app.public_id,
        "other_user": "bob",
        "other_app": bob.app.public_id,
        "other_model": "bob-model",
        "remote_url": caption_model.url,
        "versions": {
            m.public_id: m.latest_version().public_id
            for m in Model.objects.filter(app__owner__username="builtin", app__public_id="main")
        },
    }
    report, _ = run_sdk(SCRIPT, cfg, pat=alice.secret, user_id="alice")
    results = report["results"]
    failed = {name: why for name, why in results.items() if why != "ok"}
    assert not failed, "\n\n".join(f"{n}: {w}" for n, w in failed.items())
    assert list(results) == OPERATIONS
    # What the SDK did is what the server holds: the app it made is gone again, Bob's model
    # was refused to Alice and is still there, and the refusal named the workflow using it.
    assert not App.objects.filter(owner=alice.user, public_id="sdk-app").exists()
    assert Model.objects.filter(app=bob.app, public_id="bob-model").exists()
    assert "uses-colors" in report["facts"]["delete_refused"]
    assert report["facts"]["workflow_versions"] == 4
