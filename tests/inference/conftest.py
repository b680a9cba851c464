"""Helpers for inference tests: images made with Pillow, base64 bodies, predict paths."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image, ImageDraw, ImageFont

COLOR_VERSION = "b13a9cff8522d90a1d8d6902fce2dc9a"
OCR_VERSION = "d125d1fd7a154cb340911da59b9da69e"
SENTIMENT_VERSION = "996e3c70d6372b1e7e3c10875ebd2b8b"
QR_VERSION = "b159573068200315da4aa4ccee89ba42"
GENERAL_VERSION = "aa7f35c01e0642fda5cf400f543e7c40"  # the product page's version id
EMBEDDING_VERSION = "7515629a02d5aa9c4a19081500e6b224"
CAPTION_VERSION = "4ae20f0036badbe3fba16d8102372d73"
MAIN = "/v2/users/builtin/apps/main"


def png(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def solid(color, size=(64, 64), fmt="PNG") -> bytes:
    return png(Image.new("RGB", size, color), fmt)


def text_image(text: str, size=(520, 140), font_size=48) -> bytes:
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    draw.text((20, 40), text, fill="black", font=ImageFont.load_default(size=font_size))
    return png(img)


def image_input(raw: bytes, input_id: str = "") -> dict:
    item: dict = {"data": {"image": {"base64": b64(raw)}}}
    if input_id:
        item["id"] = input_id
    return item


def text_input(text: str) -> dict:
    return {"data": {"text": {"raw": text}}}


@pytest.fixture
def predict(api):
    """POST inputs to builtin/main/<model> outputs with `key`."""

    def call(model_id: str, inputs: list[dict], key: str, path: str | None = None, **body):
        return api.post(
            path or f"{MAIN}/models/{model_id}/outputs", {"inputs": inputs, **body}, key=key
        )

    return call
