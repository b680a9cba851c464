"""builtin:color-recognition: named colours from pixels (Pillow + numpy, no learned weights)."""

from __future__ import annotations

from typing import Any

import numpy as np
from clarifai_grpc.grpc.api import resources_pb2

from collectors_module.core.errors import SC, ApiError

from . import COLOR_NAMES
from ._common import PerInputRunner, concept, open_image

MAX_SIDE = 128
_INDEX = {name: i for i, name in enumerate(COLOR_NAMES)}
# Hue bands in degrees (upper bound exclusive) for saturated, bright-enough pixels.
_HUE_BANDS = (
    (15, "red"),
    (40, "orange"),
    (70, "yellow"),
    (165, "green"),
    (195, "cyan"),
    (255, "blue"),
    (290, "purple"),
    (345, "pink"),
    (361, "red"),
)


def classify_pixels(rgba: np.ndarray) -> np.ndarray:
    """Colour-name index per opaque pixel of an (N, 4) uint8 RGBA array (transparent dropped)."""
    rgba = rgba[rgba[:, 3] >= 128]
    rgb = rgba[:, :3].astype(np.float32) / 255.0
    mx = rgb.max(axis=1)
    mn = rgb.min(axis=1)
    delta = mx - mn
    v = mx
    s = np.where(mx > 0, delta / np.maximum(mx, 1e-6), 0.0)
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    safe = np.maximum(delta, 1e-6)
    h = (
        np.select(
            [mx == r, mx == g],
            [((g - b) / safe) % 6.0, (b - r) / safe + 2.0],
            default=(r - g) / safe + 4.0,
        )
        * 60.0
    )
    out = np.full(len(rgb), -1, dtype=np.int16)
    bands = np.zeros(len(rgb), dtype=np.int16)
    lower = 0.0
    for upper, name in _HUE_BANDS:
        bands[(h >= lower) & (h < upper)] = _INDEX[name]
        lower = upper
    chromatic = (v >= 0.18) & (s >= 0.2)
    brown = chromatic & (h >= 10) & (h < 45) & (v < 0.6)
    out[chromatic] = bands[chromatic]
    out[brown] = _INDEX["brown"]
    achromatic = ~chromatic
    out[achromatic & (v < 0.18)] = _INDEX["black"]
    out[achromatic & (v >= 0.18) & (v <= 0.85)] = _INDEX["gray"]
    out[achromatic & (v > 0.85)] = _INDEX["white"]
    # dark but somewhat saturated pixels (v < 0.18) are black too
    out[out < 0] = _INDEX["black"]
    return out


class ColorRecognitionRunner(PerInputRunner):
    model_type_id = "visual-classifier"
    display_name = "color-recognition"

    def predict_image(self, raw: bytes, params: dict[str, Any]) -> resources_pb2.Data:
        img = open_image(raw, max_side=MAX_SIDE, mode="RGBA")
        pixels = np.asarray(img, dtype=np.uint8).reshape(-1, 4)
        names = classify_pixels(pixels)
        if names.size == 0:
            raise ApiError(SC.INPUT_INVALID_ARGUMENT, "The image has no opaque pixels")
        counts = np.bincount(names, minlength=len(COLOR_NAMES))
        total = float(names.size)
        order = sorted(
            (i for i in range(len(COLOR_NAMES)) if counts[i]), key=lambda i: (-counts[i], i)
        )
        return resources_pb2.Data(
            concepts=[concept(COLOR_NAMES[i], counts[i] / total) for i in order]
        )
