"""End to end with Clarifai's own clients and a real Celery worker: a collector made with the
Node.js client captures a prediction made with the Python SDK, and the captured input and its
collected outputs are read back with the SDK.

It needs a live TLS gRPC server (tests/support/grpc.py), a worker (`celery_workers`, tests/support),
.venv-sdk and the Node client.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "python" / "sdk_capture.py"

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_node_collector_captures_an_sdk_prediction_read_back_with_the_sdk(
    run_node,
    run_sdk,
    celery_workers,
    alice,
    make_key,
):
    from collectors_module.capture.models import Capture, CaptureState

    celery_workers.start()
    made = run_node(
        "collector_and_model.js",
        {
            "USER_ID": "alice",
            "PAT": alice.secret,
            "APP_ID": alice.app.public_id,
            "MODEL_ID": "mood",
            "COLLECTOR_ID": "mood-collector",
            "POST_INPUTS_KEY_ID": make_key(alice.user, description="post inputs").key.public_id,
            "CALLER_USER_ID": "alice",
        },
    )
    assert made["collector"]["code"] == 10000, made

    out, _ = run_sdk(
        SCRIPT,
        {
            "user_id": "alice",
            "app_id": alice.app.public_id,
            "model_id": "mood",
            "text": "I love this product, it is wonderful",
            "timeout": 60,
        },
        pat=alice.secret,
        user_id="alice",
    )
    assert out["predicted"][0]["id"] == "positive", out
    (captured,) = out["inputs"]
    assert captured["text"] == "I love this product, it is wonderful"
    assert captured["collector"]["collector_id"] == "mood-collector"
    assert captured["collector"]["source_model_version"] == made["version_id"]
    assert captured["collector"]["caller"] == "alice"
    # The SDK sent a method call (data.parts + _method_name); the capture holds a plain input.
    assert captured["metadata_keys"] == ["collector"]
    (annotation,) = out["annotations"]
    assert annotation["input_id"] == captured["id"]
    assert annotation["model_version_id"] == made["version_id"]
    assert annotation["worker_model"] == "mood"
    # The collected outputs are the prediction the SDK got, not a recomputation elsewhere.
    assert annotation["concepts"] == out["predicted"]
    capture = Capture.objects.get(collector__public_id="mood-collector")
    assert capture.state == CaptureState.INGESTED
    assert capture.destination_input_id == captured["id"]
