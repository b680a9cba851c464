"""Helpers for the collector-rule tests: built-in sources, operator models and workflows made
through the services, images drawn in the test (nothing downloaded)."""

from __future__ import annotations

import base64
import io

import numpy as np
from clarifai_grpc.grpc.api import resources_pb2
from PIL import Image, ImageDraw, ImageFont

from collectors_module.core.protojson import from_dict
from collectors_module.inference.services import model_create
from collectors_module.workflows.services import workflow_create

COLOR = {
    "model_user_id": "builtin",
    "model_app_id": "main",
    "model_id": "color-recognition",
    "model_version_id": "b13a9cff8522d90a1d8d6902fce2dc9a",
}
OCR_NODE = {
    "id": "ocr",
    "user_id": "builtin",
    "app_id": "main",
    "model_version": {"id": "d125d1fd7a154cb340911da59b9da69e"},
}


def png(img: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


def text_image(text: str, size=(520, 140), font_size=48) -> bytes:
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    draw.text((20, 40), text, fill="black", font=ImageFont.load_default(size=font_size))
    return png(img)


def blank_image(color="white", size=(200, 100)) -> bytes:
    return png(Image.new("RGB", size, color))


def operator_model(app, model_id: str, type_id: str, params: dict, concepts=()) -> None:
    pb = resources_pb2.Model(id=model_id, model_type_id=type_id)
    pb.output_info.params.update(params)
    for c in concepts:
        pb.output_info.data.concepts.add(**c)
    model_create(app=app, model_pb=pb)


def workflow(app, workflow_id: str, nodes: list[dict]):
    return workflow_create(
        app=app, workflow_pb=from_dict({"id": workflow_id, "nodes": nodes}, resources_pb2.Workflow)
    )


def predict_image(api, secret: str, raw: bytes, source: dict = COLOR) -> dict:
    path = (
        f"/v2/users/{source['model_user_id']}/apps/{source['model_app_id']}/models/"
        f"{source['model_id']}/versions/{source['model_version_id']}/outputs"
    )
    body = {"inputs": [{"data": {"image": {"base64": base64.b64encode(raw).decode()}}}]}
    r = api.post(path, body, key=secret)
    assert r["status"]["code"] == 10000, r
    return r


COLOR_NODE = {
    "id": "color-recognition",
    "user_id": "builtin",
    "app_id": "main",
    "model_version": {"id": COLOR["model_version_id"]},
}


def halves(a, b, size=100) -> bytes:
    """A picture half colour `a`, half colour `b` (color-recognition: about 0.5 each)."""
    img = Image.new("RGB", (size, size), a)
    img.paste(b, (size // 2, 0, size, size))
    return png(img)


def solid(color, size=64) -> bytes:
    return png(Image.new("RGB", (size, size), color))


def source_then(app, workflow_id: str, op_model_id: str) -> None:
    """A workflow: the color-recognition source, then the operator model `op_model_id`."""
    workflow(
        app,
        workflow_id,
        [
            {"id": "source", "model": COLOR_NODE},
            {"id": "rule", "model": {"id": op_model_id}, "node_inputs": [{"node_id": "source"}]},
        ],
    )


def textured(color, seed: int, size=96, share: float = 1.0, other=(255, 255, 255)) -> bytes:
    """A picture of `color` (the left `share` of it; `other` on the right) with a faint random
    texture: colour names stay the same, perceptual hashes differ from picture to picture (flat
    pictures all share one pHash)."""
    rng = np.random.default_rng(seed)
    base = np.empty((size, size, 3), dtype=np.int16)
    base[:, :] = other
    base[:, : int(size * share)] = color
    blocks = rng.integers(-18, 19, size=(size // 8, size // 8, 1))
    noise = np.kron(blocks, np.ones((8, 8, 3), dtype=np.int16))
    return png(Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)))
