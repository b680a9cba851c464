"""Protobuf <-> JSON the way Clarifai's REST API and JSON client expect (snake_case names)."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor

from .errors import SC, ApiError


def to_dict(message, *, compact: bool = False) -> dict:
    """Message to JSON-ready dict. Not compact: zero values are printed (Concept.value 0.0 must
    reach the client, whose parser would otherwise fill in 1.0)."""
    return json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        use_integers_for_enums=True,
        always_print_fields_with_no_presence=not compact,
    )


def from_dict(data: dict, message_cls, *, code: int = SC.CONN_BAD_REQUEST_FORMAT):
    """Dict to message; unknown fields are ignored (as Clarifai's own parser does)."""
    try:
        return json_format.ParseDict(data, message_cls(), ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        text = str(exc)
        if "base64" in text.lower():
            # Clarifai answers undecodable image bytes with ALL_INPUT_INVALID_BYTES, not 11100.
            raise ApiError(
                SC.ALL_INPUT_INVALID_BYTES, f"Invalid base64 bytes: {text[:300]}"
            ) from exc
        raise ApiError(code, f"Could not parse the request: {text[:300]}") from exc


def _field_for_path(descriptor, path: list[str]) -> FieldDescriptor | None:
    field = None
    for part in path:
        if descriptor is None:
            return None
        field = descriptor.fields_by_name.get(part)
        if field is None:
            return None
        descriptor = field.message_type
    return field


def _coerce(field: FieldDescriptor | None, raw: str) -> Any:
    if field is None:
        return raw
    t = field.type
    if t == FieldDescriptor.TYPE_BOOL:
        if raw.lower() in ("true", "1"):
            return True
        if raw.lower() in ("false", "0", ""):
            return False
        raise ApiError(SC.CONN_BAD_REQUEST_FORMAT, f"'{field.name}' must be true or false")
    if t in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        try:
            return float(raw)
        except ValueError as exc:
            raise ApiError(SC.CONN_BAD_REQUEST_FORMAT, f"'{field.name}' must be a number") from exc
    if t in (
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_FIXED64,
    ):
        try:
            return int(raw)
        except ValueError as exc:
            raise ApiError(
                SC.CONN_BAD_REQUEST_FORMAT, f"'{field.name}' must be an integer"
            ) from exc
    return raw


def set_path(data: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def query_to_dict(query, message_cls) -> dict:
    """Dotted query keys (user_app_id.user_id=..., ids=a&ids=b) to a nested dict, typed."""
    data: dict = {}
    for key in query:
        path = key.split(".")
        field = _field_for_path(message_cls.DESCRIPTOR, path)
        if field is None:
            continue  # unknown query parameters are ignored, like unknown JSON fields
        values = query.getlist(key)
        if field.is_repeated:  # protobuf 7 dropped FieldDescriptor.label
            set_path(data, key, [_coerce(field, v) for v in values])
        else:
            set_path(data, key, _coerce(field, values[-1]))
    return data
