"""One entry point for every operator type: compile once, apply many times.

`compile_operator` checks the parameters (ApiError MODEL_INVALID_ARGUMENT with the field's
output_info path) and returns a callable `(data, seed_key) -> Data`; the executor keeps these in
its cached plans, so evaluating an operator costs no parsing. `run_operator` is the one-shot form
from docs/CONTRACTS.md. An empty `Data()` result means "dropped".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from clarifai_grpc.grpc.api import resources_pb2

from collectors_module.core.errors import SC, ApiError

from . import mappers, metadata, near_duplicate, quota, sampling, thresholds, uncertainty

Relation = mappers.Relation
CompiledOperator = Callable[[resources_pb2.Data, str], resources_pb2.Data]


def _bind(apply_fn, config) -> CompiledOperator:
    def run(data: resources_pb2.Data, seed_key: str = "") -> resources_pb2.Data:
        return apply_fn(data, config, seed_key=seed_key)

    run.config = config  # type: ignore[attr-defined]
    return run


_PARSERS: dict[str, tuple[Callable, Callable]] = {
    "random-sample": (sampling.parse, sampling.apply),
    "metadata-filter": (metadata.parse, metadata.apply),
    "concept-thresholder": (thresholds.parse_thresholder, thresholds.apply_thresholder),
    "max-probability-below": (thresholds.parse_below, thresholds.apply_max_probability),
    "max-probability-above": (thresholds.parse_above, thresholds.apply_max_probability),
    **{kind: (uncertainty.parser(kind), uncertainty.apply) for kind in uncertainty.KINDS},
    "class-quota": (quota.parse, quota.apply),
    "near-duplicate": (near_duplicate.parse, near_duplicate.apply),
}

NEEDS_RELATIONS = frozenset(mappers.DIRECTIONS)
SUPPORTED = frozenset(_PARSERS) | NEEDS_RELATIONS


def compile_operator(
    model_type_id: str,
    params: dict | None,
    concepts: list | None = None,
    relations: Iterable[Relation] = (),
) -> CompiledOperator:
    params = params or {}
    if not isinstance(params, dict):
        raise ApiError(
            SC.MODEL_INVALID_ARGUMENT,
            "output_info.params must be an object",
            field="output_info.params",
        )
    if model_type_id in NEEDS_RELATIONS:
        return _bind(mappers.apply, mappers.parse(model_type_id, params, relations))
    try:
        parse, apply = _PARSERS[model_type_id]
    except KeyError:
        raise ApiError(
            SC.MODEL_INVALID_ARGUMENT, f"'{model_type_id}' is not an operator type"
        ) from None
    return _bind(apply, parse(params, concepts or []))


def run_operator(
    model_type_id: str,
    data: resources_pb2.Data,
    params: dict | None,
    concepts: list | None = None,
    *,
    seed_key: str = "",
    relations: Iterable[Relation] = (),
) -> resources_pb2.Data:
    """Apply one operator to one Data; an empty Data means the input was dropped."""
    return compile_operator(model_type_id, params, concepts, relations)(data, seed_key)


__all__ = [
    "NEEDS_RELATIONS",
    "SUPPORTED",
    "CompiledOperator",
    "check_operator_config",
    "compile_operator",
    "run_operator",
]


def check_operator_config(model_type_id: str, output_info: dict | None) -> None:
    """For PostModels of an operator type: raise ApiError(MODEL_INVALID_ARGUMENT, field=<the
    output_info path>) when its `output_info.params` / `output_info.data.concepts` are invalid."""
    info = output_info or {}
    concepts = (info.get("data") or {}).get("concepts") or []
    compile_operator(model_type_id, info.get("params") or {}, concepts, ())
