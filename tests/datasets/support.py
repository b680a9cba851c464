"""Helpers of the dataset tests: QR images the built-in detector finds, waiting on versions and
exports, downloading and opening archives."""

from __future__ import annotations

import base64
import io
import time
from urllib.parse import urlparse

import cv2
import numpy as np
from PIL import Image

QR = {
    "model_user_id": "builtin",
    "model_app_id": "main",
    "model_id": "qr-code",
    "model_version_id": "b159573068200315da4aa4ccee89ba42",
}


def qr_png(payload: str, width: int = 600, height: int = 400, at: tuple[int, int] = (300, 100)):
    code = cv2.QRCodeEncoder.create().encode(payload)
    code = cv2.resize(code, None, fx=6, fy=6, interpolation=cv2.INTER_NEAREST)
    canvas = np.full((height, width), 255, dtype=np.uint8)
    x, y = at
    canvas[y : y + code.shape[0], x : x + code.shape[1]] = code
    out = io.BytesIO()
    Image.fromarray(canvas).save(out, "PNG")
    return out.getvalue()


def predict_qr(api, secret: str, raw: bytes) -> dict:
    s = QR
    path = (
        f"/v2/users/{s['model_user_id']}/apps/{s['model_app_id']}/models/{s['model_id']}"
        f"/versions/{s['model_version_id']}/outputs"
    )
    body = {"inputs": [{"data": {"image": {"base64": base64.b64encode(raw).decode()}}}]}
    r = api.post(path, body, key=secret)
    assert r["status"]["code"] == 10000, r
    return r


def wait_for(check, timeout: float = 60.0, what: str = "condition", log=lambda: ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n{log()}")


def version_path(tenant, dataset: str, version: str) -> str:
    return (
        f"/v2/users/{tenant.user.username}/apps/{tenant.app.public_id}/datasets/{dataset}"
        f"/versions/{version}"
    )


def download(client, url: str, secret: str | None) -> tuple[int, bytes, dict]:
    extra = {"HTTP_AUTHORIZATION": f"Key {secret}"} if secret else {}
    response = client.get(urlparse(url).path, **extra)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response.status_code, body, dict(response.headers)
