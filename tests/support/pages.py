"""Server-rendered pages: logged-in clients, blob storage in tmp, inputs made through the service."""

from __future__ import annotations

import io

import pytest
from django.test import Client

PASSWORD = "pw-for-tests-123"


def png_bytes(
    size: tuple[int, int] = (8, 8), color: tuple[int, int, int] = (200, 30, 30), fmt: str = "PNG"
) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture
def media_root(settings, tmp_path):
    """Blob storage for this test (shared with a live server and a worker the test starts)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def alice_client(alice) -> Client:
    client = Client()
    client.force_login(alice.user)
    return client


@pytest.fixture
def bob_client(bob) -> Client:
    client = Client()
    client.force_login(bob.user)
    return client


@pytest.fixture
def make_input(db):
    from clarifai_grpc.grpc.api import resources_pb2
    from google.protobuf import json_format

    from collectors_module.inputs.services import input_create

    def make(
        app,
        input_id: str = "",
        *,
        image: bytes | None = None,
        text: str = "",
        concepts=(),
        metadata: dict | None = None,
        annotations: list | None = None,
    ):
        data: dict = {}
        if text:
            data["text"] = {"raw": text}
        if concepts:
            data["concepts"] = [{"id": c, "name": c, "value": v} for c, v in concepts]
        if metadata:
            data["metadata"] = metadata
        pb = json_format.ParseDict({"id": input_id, "data": data}, resources_pb2.Input())
        return input_create(app=app, input_pb=pb, image_bytes=image, annotations=annotations)

    return make
