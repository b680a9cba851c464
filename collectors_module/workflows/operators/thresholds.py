"""Concept-value filters: `concept-thresholder`, `max-probability-below`, `max-probability-above`.

concept-thresholder: thresholds per concept (`output_info.data.concepts` = [{id, value}]) and a
comparison (`concept_threshold_type`: GREATER_THAN=1, GREATER_THAN_OR_EQUAL=2, LESS_THAN=3,
LESS_THAN_OR_EQUAL=4, EQUAL=5, by name or number; 0/unset means GREATER_THAN). A concept passes
when `value <cmp> threshold`; concepts without a threshold pass unless `filter_other_concepts`.
The same applies to each region's concepts (a region left without concepts is removed). An input
left with no concept and no region is dropped (an empty Data).

max-probability-below / -above: keep the input (unchanged) when the highest concept value (over
the input's concepts, or its regions' concepts when it has none) is strictly below / above
`threshold`. No concepts at all: dropped.
"""

from __future__ import annotations

import math
import operator
import struct
from collections.abc import Callable
from dataclasses import dataclass

from clarifai_grpc.grpc.api import resources_pb2

from ..model_types import THRESHOLD_TYPES
from ._params import boolean, concept_key, invalid, number

CONCEPTS_PATH = "output_info.data.concepts"
_COMPARATORS: dict[int, Callable[[float, float], bool]] = {
    1: operator.gt,
    2: operator.ge,
    3: operator.lt,
    4: operator.le,
    5: lambda a, b: math.isclose(a, b, rel_tol=0.0, abs_tol=1e-6),
}
_BY_NAME = {opt.id: n for n, opt in enumerate(THRESHOLD_TYPES, start=1)}
for _n, _opt in enumerate(THRESHOLD_TYPES, start=1):
    for _alias in _opt.aliases:
        if isinstance(_alias, str):
            _BY_NAME[_alias] = _n


def as_float32(value: float) -> float:
    """Concept values are float32 on the wire: compare thresholds in the same precision, so a
    value of 0.9 is EQUAL to and not GREATER_THAN a threshold of 0.9."""
    return struct.unpack("f", struct.pack("f", value))[0]


def threshold_type(raw) -> int:
    """A ValueComparator given as a name ('GREATER_THAN'), a symbol ('>') or a number (1)."""
    if raw is None or raw == "" or raw == 0 or raw == "CONCEPT_THRESHOLD_NOT_SET":
        return 1
    if isinstance(raw, bool):
        raise invalid("concept_threshold_type", "concept_threshold_type must be a name or a number")
    if isinstance(raw, int | float) and float(raw).is_integer() and int(raw) in _COMPARATORS:
        return int(raw)
    if isinstance(raw, str):
        text = raw.strip()
        if text.upper() in _BY_NAME:
            return _BY_NAME[text.upper()]
        if text in _BY_NAME:
            return _BY_NAME[text]
        if text.isdigit() and int(text) in _COMPARATORS:
            return int(text)
    names = ", ".join(f"{opt.id}={n}" for n, opt in enumerate(THRESHOLD_TYPES, start=1))
    raise invalid(
        "concept_threshold_type",
        f"concept_threshold_type must be one of {names}, got {str(raw)[:40]!r}",
    )


@dataclass(frozen=True)
class ThresholderConfig:
    thresholds: dict[str, float]  # concept id (or name) -> threshold
    compare: int = 1
    filter_other_concepts: bool = False


def parse_thresholder(params: dict, concepts: list | None) -> ThresholderConfig:
    thresholds: dict[str, float] = {}
    for i, concept in enumerate(concepts or []):
        cid, name = concept_key(concept)
        if not cid and not name:
            raise invalid(CONCEPTS_PATH, f"concepts[{i}] needs an id")
        # A stored concept without "value" had 0 in its protobuf (JSON drops zeros): threshold 0.
        raw = concept.get("value", 0.0) if isinstance(concept, dict) else concept.value
        value = number({"value": raw}, "value", 0.0, 0.0, 1.0) if raw is not None else 0.0
        thresholds[cid or name] = as_float32(value)
    return ThresholderConfig(
        thresholds=thresholds,
        compare=threshold_type(params.get("concept_threshold_type")),
        filter_other_concepts=boolean(params, "filter_other_concepts", False),
    )


def _threshold_for(config: ThresholderConfig, concept) -> float | None:
    value = config.thresholds.get(concept.id)
    if value is None and concept.name:
        value = config.thresholds.get(concept.name)
    return value


def _passes(config: ThresholderConfig, concept) -> bool:
    threshold = _threshold_for(config, concept)
    if threshold is None:
        return not config.filter_other_concepts
    return _COMPARATORS[config.compare](concept.value, threshold)


def apply_thresholder(
    data: resources_pb2.Data, config: ThresholderConfig, *, seed_key: str = ""
) -> resources_pb2.Data:
    kept = [c for c in data.concepts if _passes(config, c)]
    regions = []
    for region in data.regions:
        region_kept = [c for c in region.data.concepts if _passes(config, c)]
        if region_kept:
            r = resources_pb2.Region()
            r.CopyFrom(region)
            del r.data.concepts[:]
            r.data.concepts.extend(region_kept)
            regions.append(r)
    if not kept and not regions:
        return resources_pb2.Data()
    out = resources_pb2.Data()
    out.CopyFrom(data)
    del out.concepts[:]
    out.concepts.extend(kept)
    del out.regions[:]
    out.regions.extend(regions)
    return out


@dataclass(frozen=True)
class MaxProbabilityConfig:
    threshold: float
    above: bool  # True: keep when max > threshold; False: keep when max < threshold


def parse_below(params: dict, concepts: list | None = None) -> MaxProbabilityConfig:
    return MaxProbabilityConfig(
        threshold=as_float32(number(params, "threshold", None, 0.0, 1.0)), above=False
    )


def parse_above(params: dict, concepts: list | None = None) -> MaxProbabilityConfig:
    return MaxProbabilityConfig(
        threshold=as_float32(number(params, "threshold", None, 0.0, 1.0)), above=True
    )


def max_probability(data: resources_pb2.Data) -> float | None:
    values = [c.value for c in data.concepts]
    if not values:
        values = [c.value for r in data.regions for c in r.data.concepts]
    return max(values) if values else None


def apply_max_probability(
    data: resources_pb2.Data, config: MaxProbabilityConfig, *, seed_key: str = ""
) -> resources_pb2.Data:
    top = max_probability(data)
    if top is None:
        return resources_pb2.Data()
    keep = top > config.threshold if config.above else top < config.threshold
    return data if keep else resources_pb2.Data()
