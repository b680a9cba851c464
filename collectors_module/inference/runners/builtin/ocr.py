"""builtin:ocr: printed text from images with rapidocr-onnxruntime (PP-OCRv4, ONNX weights shipped)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from clarifai_grpc.grpc.api import resources_pb2

from collectors_module.inference import conf

from ._common import PerInputRunner, open_image

DECODE_MAX_SIDE = 2000


class OcrRunner(PerInputRunner):
    model_type_id = "image-to-text"
    display_name = "ocr"

    def __init__(self, config: dict[str, Any] | None = None):
        super().__init__(config)
        # Heavy dependency: loaded on first use, not when this module is imported.
        from rapidocr_onnxruntime import RapidOCR

        # Resize so the longer side is at most N (rapidocr's default scales SMALL images UP to a
        # 736 px shorter side, which costs ~10x on screenshots and thumbnails).
        self._engine = RapidOCR(det_limit_side_len=conf.ocr_max_side(), det_limit_type="max")
        self._lock = threading.Lock()  # RapidOCR keeps per-call state on the instance

    def predict_image(self, raw: bytes, params: dict[str, Any]) -> resources_pb2.Data:
        img = open_image(raw, max_side=DECODE_MAX_SIDE)
        width, height = img.size
        # rapidocr works on BGR arrays like OpenCV.
        array = np.ascontiguousarray(np.asarray(img, dtype=np.uint8)[:, :, ::-1])
        min_score = float(params.get("min_score", 0.5) or 0.0)
        with self._lock:
            result, _ = self._engine(array)
        lines = []
        for box, text, score in result or []:
            if not text or float(score) < min_score:
                continue
            pts = np.asarray(box, dtype=np.float32)
            lines.append((float(pts[:, 1].min()), float(pts[:, 0].min()), pts, text, float(score)))
        lines.sort(key=lambda line: (round(line[0] / 10.0), line[1]))
        data = resources_pb2.Data()
        for i, (_, _, pts, text, score) in enumerate(lines):
            region = data.regions.add(id=f"line-{i}", value=score)
            box = region.region_info.bounding_box
            box.top_row = max(0.0, float(pts[:, 1].min()) / height)
            box.left_col = max(0.0, float(pts[:, 0].min()) / width)
            box.bottom_row = min(1.0, float(pts[:, 1].max()) / height)
            box.right_col = min(1.0, float(pts[:, 0].max()) / width)
            region.data.text.raw = text
        if lines:  # no text read: leave `text` unset, not present-and-empty (the post-queue rule)
            data.text.raw = "\n".join(line[3] for line in lines)
        return data
