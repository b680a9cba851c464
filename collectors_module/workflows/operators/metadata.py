"""`metadata-filter`: let through an input whose metadata matches the configured conditions.

params:
  conditions: [{"key": "a.b", "op": "equals", "value": 1}, ...]
      key    dotted path into nested metadata objects ("camera.site"); a key that itself holds
             dots is found too ({"a.b": 1} matches key "a.b")
      op     equals | not_equals | exists | not_exists | in | not_in
             (default: equals when "value" is given, exists otherwise; "values" means in)
      value  any JSON value; a list for in / not_in
  match: "all" (default) or "any"

A condition on a missing key is false, except not_exists, not_equals and not_in (true).
Equality is JSON equality: 1 == 1.0, but true != 1 and "1" != 1. No conditions keeps everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clarifai_grpc.grpc.api import resources_pb2
from google.protobuf import json_format, struct_pb2

from ._params import invalid

OPS = ("equals", "not_equals", "exists", "not_exists", "in", "not_in")
MAX_CONDITIONS = 50
_MISSING = object()


@dataclass(frozen=True)
class Condition:
    path: tuple[str, ...]
    op: str
    value: Any = None


@dataclass(frozen=True)
class Config:
    conditions: tuple[Condition, ...]
    match_all: bool = True


def _parse_condition(index: int, raw: Any) -> Condition:
    where = f"conditions[{index}]"
    if not isinstance(raw, dict):
        raise invalid(
            "conditions", f'{where} must be an object like {{"key": ..., "op": ..., "value": ...}}'
        )
    key = raw.get("key")
    if not isinstance(key, str) or not key.strip() or len(key) > 512:
        raise invalid(
            "conditions", f'{where}.key must be a non-empty dotted path such as "camera.site"'
        )
    op = raw.get("op")
    has_value = "value" in raw
    if op is None or op == "":
        op = "in" if "values" in raw else ("equals" if has_value else "exists")
    if op not in OPS:
        raise invalid(
            "conditions", f"{where}.op must be one of {', '.join(OPS)}, got {str(op)[:40]!r}"
        )
    value = raw.get("values", raw.get("value")) if op in ("in", "not_in") else raw.get("value")
    if op in ("equals", "not_equals") and not has_value:
        raise invalid("conditions", f'{where} ({op}) needs a "value"')
    if op in ("in", "not_in") and not isinstance(value, list):
        raise invalid("conditions", f'{where} ({op}) needs a list of allowed values in "value"')
    return Condition(path=tuple(key.split(".")), op=op, value=value)


def parse(params: dict, concepts: list | None = None) -> Config:
    raw = params.get("conditions", [])
    if raw is None:
        raw = []
    if isinstance(raw, dict):  # shorthand: {"key": value, ...} means equality on each key
        raw = [{"key": k, "op": "equals", "value": v} for k, v in raw.items()]
    if not isinstance(raw, list):
        raise invalid("conditions", "conditions must be a list of condition objects")
    if len(raw) > MAX_CONDITIONS:
        raise invalid("conditions", f"at most {MAX_CONDITIONS} conditions")
    match = params.get("match", "all") or "all"
    if match not in ("all", "any"):
        raise invalid("match", f"match must be 'all' or 'any', got {str(match)[:40]!r}")
    return Config(
        conditions=tuple(_parse_condition(i, c) for i, c in enumerate(raw)),
        match_all=match == "all",
    )


def lookup(metadata: Any, path: tuple[str, ...]) -> Any:
    """The value at a dotted path, or _MISSING. Tries the longest literal key first at each level."""
    if not path:
        return metadata
    if not isinstance(metadata, dict):
        return _MISSING
    for cut in range(len(path), 0, -1):
        key = ".".join(path[:cut])
        if key in metadata:
            found = lookup(metadata[key], path[cut:])
            if found is not _MISSING:
                return found
    return _MISSING


def json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def holds(condition: Condition, metadata: dict, path: tuple[str, ...] | None = None) -> bool:
    found = lookup(metadata, condition.path if path is None else path)
    op = condition.op
    if found is _MISSING:
        return op in ("not_exists", "not_equals", "not_in")
    if op == "exists":
        return True
    if op == "not_exists":
        return False
    if op == "equals":
        return json_equal(found, condition.value)
    if op == "not_equals":
        return not json_equal(found, condition.value)
    inside = any(json_equal(found, allowed) for allowed in condition.value)
    return inside if op == "in" else not inside


def matches(config: Config, metadata: dict) -> bool:
    if not config.conditions:
        return True
    results = (holds(c, metadata) for c in config.conditions)
    return all(results) if config.match_all else any(results)


def metadata_of(data: resources_pb2.Data) -> dict:
    if not data.HasField("metadata"):
        return {}
    return json_format.MessageToDict(data.metadata)


def _python(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        return value.number_value
    if kind == "bool_value":
        return value.bool_value
    if kind in ("struct_value", "list_value"):
        return json_format.MessageToDict(getattr(value, kind))
    return None


def lookup_struct(struct: struct_pb2.Struct, path: tuple[str, ...]) -> Any:
    """`lookup` on a protobuf Struct without converting all of it (only the value found)."""
    fields = struct.fields
    for cut in range(len(path), 0, -1):
        key = ".".join(path[:cut]) if cut > 1 else path[0]
        if key not in fields:
            continue
        value = fields[key]
        rest = path[cut:]
        if not rest:
            return _python(value)
        if value.WhichOneof("kind") == "struct_value":
            found = lookup_struct(value.struct_value, rest)
            if found is not _MISSING:
                return found
    return _MISSING


def holds_in_struct(condition: Condition, struct: struct_pb2.Struct) -> bool:
    found = lookup_struct(struct, condition.path)
    return holds(condition, {} if found is _MISSING else {"v": found}, path=("v",))


def apply(data: resources_pb2.Data, config: Config, *, seed_key: str = "") -> resources_pb2.Data:
    """The input itself when its metadata matches, an empty Data otherwise."""
    if not config.conditions:
        return data
    struct = data.metadata
    results = (holds_in_struct(c, struct) for c in config.conditions)
    keep = all(results) if config.match_all else any(results)
    return data if keep else resources_pb2.Data()
