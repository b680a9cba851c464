"""builtin:qr-code: find and decode QR codes with OpenCV's QRCodeDetector (no learned weights)."""

from __future__ import annotations

from typing import Any

import numpy as np
from clarifai_grpc.grpc.api import resources_pb2

from ._common import PerInputRunner, concept, open_image

MAX_SIDE = 1600


def bounding_box(points: np.ndarray, width: int, height: int) -> resources_pb2.BoundingBox:
    xs, ys = points[:, 0], points[:, 1]
    return resources_pb2.BoundingBox(
        top_row=float(max(0.0, ys.min()) / height),
        left_col=float(max(0.0, xs.min()) / width),
        bottom_row=float(min(float(height), ys.max()) / height),
        right_col=float(min(float(width), xs.max()) / width),
    )


class QrCodeRunner(PerInputRunner):
    model_type_id = "visual-detector"
    display_name = "qr-code"

    def predict_image(self, raw: bytes, params: dict[str, Any]) -> resources_pb2.Data:
        # Heavy dependency: loaded on first use, not when this module is imported.
        import cv2

        img = open_image(raw, max_side=MAX_SIDE).convert("L")
        gray = np.asarray(img, dtype=np.uint8)
        # A detector per call: cheap to build and never shared between threads.
        ok, texts, points, _ = cv2.QRCodeDetector().detectAndDecodeMulti(gray)
        data = resources_pb2.Data()
        if not ok or points is None:
            return data
        height, width = gray.shape
        payloads = []
        for i, (text, quad) in enumerate(zip(texts, points, strict=False)):
            region = data.regions.add(id=f"qr-{i}", value=1.0)
            region.region_info.bounding_box.CopyFrom(bounding_box(np.asarray(quad), width, height))
            region.data.concepts.append(concept("qr-code", 1.0))
            if text:
                region.data.text.raw = text
                payloads.append(text)
        if payloads:
            data.text.raw = "\n".join(payloads)
        return data
