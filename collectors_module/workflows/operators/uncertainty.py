"""Uncertainty sampling at capture time: `least-confidence`, `margin-below`, `entropy-above`.

Each scores how unsure the prediction is and keeps the input (unchanged) when the score passes
`threshold`; otherwise the input is dropped (an empty Data). Scores, over the concept values v:

- least-confidence: 1 - max(v); kept when the score is strictly above the threshold;
- margin-below:     max(v) - second(v) (second is 0 with a single concept); kept when the margin
                    is strictly below the threshold (a small margin means two classes compete);
- entropy-above:    the Shannon entropy of v normalised to sum to 1, divided by ln(len(v)) so it
                    lies in [0, 1] (0 for one concept: nothing competes); kept when it is strictly
                    above the threshold.

`over` chooses the concepts scored: `concepts` (the input's own), `regions` (each region's
concepts are scored and the MOST uncertain region decides, e.g. a detector's least sure box), or
`auto` (the input's concepts, else its regions'). No concepts at all: dropped. Comparisons are in
float32, as concept values travel. Pure: no database, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from clarifai_grpc.grpc.api import resources_pb2

from ._params import invalid, number
from .thresholds import as_float32

OVER = ("auto", "concepts", "regions")


def least_confidence(values: Sequence[float]) -> float:
    return 1.0 - max(values)


def margin(values: Sequence[float]) -> float:
    if len(values) == 1:
        return float(values[0])
    first = second = 0.0
    for v in values:
        if v > first:
            first, second = v, first
        elif v > second:
            second = v
    return first - second


def normalised_entropy(values: Sequence[float]) -> float:
    positive = [v for v in values if v > 0]
    if len(values) < 2 or not positive:
        return 0.0
    total = sum(positive)
    h = -sum((v / total) * math.log(v / total) for v in positive)
    return min(1.0, h / math.log(len(values)))


@dataclass(frozen=True)
class Kind:
    score: Callable[[Sequence[float]], float]
    keep_above: bool  # keep when score > threshold (else when score < threshold)
    most_uncertain: Callable  # over regions: max or min of the region scores


KINDS: dict[str, Kind] = {
    "least-confidence": Kind(least_confidence, True, max),
    "margin-below": Kind(margin, False, min),
    "entropy-above": Kind(normalised_entropy, True, max),
}


@dataclass(frozen=True)
class Config:
    kind: str
    threshold: float
    over: str = "auto"


def parser(kind: str) -> Callable[[dict, list | None], Config]:
    def parse(params: dict, concepts: list | None = None) -> Config:
        over = str(params.get("over", "auto") or "auto").strip().lower()
        if over not in OVER:
            raise invalid("over", f"over must be one of {', '.join(OVER)}, got {over[:40]!r}")
        return Config(kind, as_float32(number(params, "threshold", None, 0.0, 1.0)), over)

    return parse


def score(data: resources_pb2.Data, config: Config) -> float | None:
    """The uncertainty score of `data` under `config` (None: nothing to score)."""
    kind = KINDS[config.kind]
    if config.over in ("auto", "concepts") and data.concepts:
        return kind.score([c.value for c in data.concepts])
    if config.over == "concepts":
        return None
    scores = [
        kind.score([c.value for c in r.data.concepts]) for r in data.regions if r.data.concepts
    ]
    return kind.most_uncertain(scores) if scores else None


def apply(data: resources_pb2.Data, config: Config, *, seed_key: str = "") -> resources_pb2.Data:
    s = score(data, config)
    if s is None:
        return resources_pb2.Data()
    s = as_float32(s)
    keep = s > config.threshold if KINDS[config.kind].keep_above else s < config.threshold
    return data if keep else resources_pb2.Data()
