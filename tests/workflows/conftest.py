"""Helpers for workflow tests: operator models made through the model service, images, bodies."""

from __future__ import annotations

import base64
import io

import pytest
from clarifai_grpc.grpc.api import resources_pb2
from google.protobuf import struct_pb2
from PIL import Image, ImageDraw, ImageFont

COLOR_VERSION = "b13a9cff8522d90a1d8d6902fce2dc9a"
OCR_VERSION = "d125d1fd7a154cb340911da59b9da69e"
SENTIMENT_VERSION = "996e3c70d6372b1e7e3c10875ebd2b8b"


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def solid(color, size=(64, 64)) -> bytes:
    return png(Image.new("RGB", size, color))


def text_image(text: str, size=(640, 140), font_size=48) -> bytes:
    img = Image.new("RGB", size, "white")
    ImageDraw.Draw(img).text(
        (20, 40), text, fill="black", font=ImageFont.load_default(size=font_size)
    )
    return png(img)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def image_input(raw: bytes, input_id: str = "", metadata: dict | None = None) -> dict:
    item: dict = {"data": {"image": {"base64": b64(raw)}}}
    if input_id:
        item["id"] = input_id
    if metadata is not None:
        item["data"]["metadata"] = metadata
    return item


def node(node_id: str, model_id: str, version_id: str = "", inputs=(), **extra) -> dict:
    n: dict = {"id": node_id, "model": {"id": model_id, "model_version": {"id": version_id}}}
    if inputs:
        n["node_inputs"] = [{"node_id": i} for i in inputs]
    n["model"].update(extra.pop("model", {}))
    n.update(extra)
    return n


def builtin_node(node_id: str, model_id: str, version_id: str, inputs=()) -> dict:
    return node(
        node_id, model_id, version_id, inputs, model={"user_id": "builtin", "app_id": "main"}
    )


def data_pb(concepts=(), metadata=None, text="") -> resources_pb2.Data:
    d = resources_pb2.Data(
        concepts=[resources_pb2.Concept(id=c, name=c, value=v) for c, v in concepts]
    )
    if metadata is not None:
        s = struct_pb2.Struct()
        s.update(metadata)
        d.metadata.CopyFrom(s)
    if text:
        d.text.raw = text
    return d


@pytest.fixture
def make_operator(db):
    """Create an operator model (and its first version) in `app` through inference.services."""
    from collectors_module.inference.services import model_create

    def make(app, model_id: str, model_type_id: str, params: dict | None = None, concepts=()):
        pb = resources_pb2.Model(id=model_id, model_type_id=model_type_id)
        if params:
            pb.output_info.params.update(params)
        for c in concepts:
            pb.output_info.data.concepts.add(id=c["id"], value=c.get("value", 1.0))
        model = model_create(app=app, model_pb=pb)
        return model.latest_version()

    return make


@pytest.fixture
def workflow_pb():
    from collectors_module.core.protojson import from_dict

    def make(workflow_id: str, nodes: list[dict], **extra) -> resources_pb2.Workflow:
        return from_dict({"id": workflow_id, "nodes": nodes, **extra}, resources_pb2.Workflow)

    return make
