"""Helpers shared by the built-in runners: per-input error handling and image decoding."""

from __future__ import annotations

import logging
from typing import Any

from clarifai_grpc.grpc.api import resources_pb2
from PIL import Image, ImageOps

from collectors_module.core.errors import SC, ApiError
from collectors_module.core.images import decode_reduced, decode_slot
from collectors_module.inference.runners.base import Result, Runner

log = logging.getLogger("collectors.inference.runners")


def concept(concept_id: str, value: float) -> resources_pb2.Concept:
    return resources_pb2.Concept(id=concept_id, name=concept_id, value=float(value), app_id="main")


def open_image(raw: bytes, *, max_side: int, mode: str = "RGB") -> Image.Image:
    """Decode already-validated bytes, scaled so the longer side is at most `max_side`.

    JPEGs are decoded at a reduced scale directly (draft), other formats are reduced by an
    integer factor right after decoding (core.images.decode_reduced), inside a decode slot (at
    most IMAGE_DECODE_CONCURRENCY full-size decodes per process). Orientation is applied to the
    small image. Transparent pixels are composited on white for RGB; `mode="RGBA"` keeps alpha.
    """
    with decode_slot():
        img = decode_reduced(raw, max_side)
    if max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    img = ImageOps.exif_transpose(img)
    if mode == "RGBA":
        return img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "P"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


class PerInputRunner(Runner):
    """Runs `predict_one` on each input; one input's failure never fails the others."""

    input_kind = "image"  # "image" or "text"
    display_name = "model"

    def predict(self, inputs: list[resources_pb2.Data], params: dict[str, Any]) -> list[Result]:
        results: list[Result] = []
        for data in inputs:
            try:
                results.append(self._one(data, params))
            except ApiError as exc:
                results.append(exc)
            except Exception as exc:
                log.exception("%s failed on an input", self.display_name)
                results.append(
                    ApiError(
                        SC.MODEL_PREDICTION_FAILED,
                        f"{self.display_name} failed: {type(exc).__name__}: {exc}"[:500],
                    )
                )
        return results

    def _one(self, data: resources_pb2.Data, params: dict[str, Any]) -> resources_pb2.Data:
        if self.input_kind == "image":
            if not data.image.base64:
                raise ApiError(
                    SC.INPUT_INVALID_ARGUMENT,
                    f"The {self.display_name} model takes an image (image.url or image.base64)",
                )
            return self.predict_image(data.image.base64, params)
        if not data.HasField("text") or not data.text.raw.strip():
            raise ApiError(
                SC.INPUT_INVALID_ARGUMENT, f"The {self.display_name} model takes text (text.raw)"
            )
        return self.predict_text(data.text.raw, params)

    def predict_image(self, raw: bytes, params: dict[str, Any]) -> resources_pb2.Data:
        raise NotImplementedError

    def predict_text(self, text: str, params: dict[str, Any]) -> resources_pb2.Data:
        raise NotImplementedError
