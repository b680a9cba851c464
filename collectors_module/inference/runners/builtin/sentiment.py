"""builtin:sentiment: positive / negative / neutral from the VADER lexicon (ships in its package)."""

from __future__ import annotations

import math
import threading
from typing import Any

from clarifai_grpc.grpc.api import resources_pb2
from google.protobuf import struct_pb2

from ._common import PerInputRunner, concept

NEUTRAL_BAND = 0.05  # VADER's convention: |compound| < 0.05 is neutral
SHARPNESS = 6.0


def scores_from_compound(compound: float) -> dict[str, float]:
    """Softmax over (k*c, -k*c, k*band): positive wins above +band, negative below -band."""
    logits = {
        "positive": SHARPNESS * compound,
        "negative": -SHARPNESS * compound,
        "neutral": SHARPNESS * NEUTRAL_BAND,
    }
    top = max(logits.values())
    exp = {k: math.exp(v - top) for k, v in logits.items()}
    total = sum(exp.values())
    return {k: v / total for k, v in exp.items()}


class SentimentRunner(PerInputRunner):
    model_type_id = "text-classifier"
    display_name = "sentiment"
    input_kind = "text"

    def __init__(self, config: dict[str, Any] | None = None):
        super().__init__(config)
        # Heavy dependency: loaded on first use, not when this module is imported.
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._analyzer = SentimentIntensityAnalyzer()
        self._lock = threading.Lock()  # the analyzer keeps no per-call state, but be safe

    def predict_text(self, text: str, params: dict[str, Any]) -> resources_pb2.Data:
        with self._lock:
            vader = self._analyzer.polarity_scores(text)
        scores = scores_from_compound(vader["compound"])
        data = resources_pb2.Data(
            concepts=[concept(k, v) for k, v in sorted(scores.items(), key=lambda kv: -kv[1])]
        )
        meta = struct_pb2.Struct()
        meta.update({"vader": {k: float(v) for k, v in vader.items()}})
        data.metadata.CopyFrom(meta)
        return data
