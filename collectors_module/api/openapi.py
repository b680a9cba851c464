"""OpenAPI 3.1 document of the IMPLEMENTED REST endpoints, generated from clarifai-grpc.

Paths and verbs come from the `google.api.http` annotations (through the REST transport's route
table, so the document routes exactly as the server does); schemas come from the request and
response message descriptors, with snake_case property names as the JSON transport uses.

The schemas describe what the server's JSON parser really accepts (protobuf's JSON mapping with
unknown fields and unknown enum names ignored), so a fuzzer's "schema-violating" data is data the
server must reject:
- every property may be null (the parser treats null as "unset"); repeated items may not;
- 32/64-bit integers: a JSON integer in range, or a numeric string;
- float/double: a number (float: within the 32-bit range), a numeric string, or a boolean;
- enums: a name or a number (names listed in the description; unknown names are ignored);
- bytes: base64 text; Struct: object; Value: anything; Timestamp/Duration/FieldMask: strings.
Path template variables such as `{user_app_id.user_id}` become parameters named
`user_app_id__user_id` (dots would read as attribute access in some URL formatters).
"""

from __future__ import annotations

import functools
import re
from typing import Any

from django.http import JsonResponse
from django.views.decorators.http import require_GET
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from collectors_module.api.descriptors import all_rpcs
from collectors_module.api.dispatch import implemented
from collectors_module.api.rest.transport import route_table

OPENAPI_VERSION = "3.1.0"
REQUEST_INLINE_DEPTH = 3  # request -> inputs -> data -> image: deep enough for every real field
SECURITY_SCHEME = "ClarifaiKey"
_VAR_RE = re.compile(r"\{([^}=]+)(?:=[^}]*)?\}")
_FLOAT32_MAX = 3.4028234663852886e38

_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}

_WRAPPERS = {
    "google.protobuf.BoolValue": FieldDescriptor.TYPE_BOOL,
    "google.protobuf.StringValue": FieldDescriptor.TYPE_STRING,
    "google.protobuf.BytesValue": FieldDescriptor.TYPE_BYTES,
    "google.protobuf.Int32Value": FieldDescriptor.TYPE_INT32,
    "google.protobuf.UInt32Value": FieldDescriptor.TYPE_UINT32,
    "google.protobuf.Int64Value": FieldDescriptor.TYPE_INT64,
    "google.protobuf.UInt64Value": FieldDescriptor.TYPE_UINT64,
    "google.protobuf.FloatValue": FieldDescriptor.TYPE_FLOAT,
    "google.protobuf.DoubleValue": FieldDescriptor.TYPE_DOUBLE,
}


def path_param_name(variable: str) -> str:
    return variable.replace(".", "__")


def openapi_path(template: str) -> str:
    return _VAR_RE.sub(lambda m: "{" + path_param_name(m.group(1)) + "}", template)


def _scalar_schema(ftype: int, field: FieldDescriptor | None = None) -> dict[str, Any]:
    if ftype == FieldDescriptor.TYPE_BOOL:
        return {"type": "boolean"}
    if ftype == FieldDescriptor.TYPE_STRING:
        return {"type": "string"}
    if ftype == FieldDescriptor.TYPE_BYTES:
        return {"type": "string", "contentEncoding": "base64"}
    if ftype in _INT_RANGES:
        low, high = _INT_RANGES[ftype]
        return {"anyOf": [{"type": "integer", "minimum": low, "maximum": high}, {"type": "string"}]}
    if ftype == FieldDescriptor.TYPE_FLOAT:
        number = {"type": "number", "minimum": -_FLOAT32_MAX, "maximum": _FLOAT32_MAX}
        return {"anyOf": [number, {"type": "string"}, {"type": "boolean"}]}
    if ftype == FieldDescriptor.TYPE_DOUBLE:
        return {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}]}
    if ftype == FieldDescriptor.TYPE_ENUM and field is not None:
        names = ", ".join(v.name for v in field.enum_type.values[:50])
        return {
            "anyOf": [
                {"type": "string"},
                {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
            ],
            "description": f"{field.enum_type.name}: {names}",
        }
    return {}


class _Builder:
    """Response schemas are shared components (`$ref`, recursion allowed). Request bodies are
    inlined down to `inline_depth` nested messages; deeper messages are "any object" (the
    server still parses them strictly). Clarifai's message graph is large and recursive, and a
    generator that expands every reference would otherwise build millions of nodes."""

    def __init__(self, inline_depth: int | None = None):
        self.components: dict[str, dict[str, Any]] = {}
        self.inline_depth = inline_depth
        self._depth = 0

    def message_ref(self, desc: Descriptor) -> dict[str, Any]:
        special = self._well_known(desc)
        if special is not None:
            return special
        if self.inline_depth is not None:
            if self._depth > self.inline_depth:
                return {"type": "object", "description": desc.name}
            self._depth += 1
            try:
                return self._message_schema(desc)
            finally:
                self._depth -= 1
        name = desc.full_name
        if name not in self.components:
            self.components[name] = {}  # placeholder: recursion refers to it by name
            self.components[name] = self._message_schema(desc)
        return {"$ref": f"#/components/schemas/{name}"}

    def _well_known(self, desc: Descriptor) -> dict[str, Any] | None:
        name = desc.full_name
        if name in _WRAPPERS:
            return _scalar_schema(_WRAPPERS[name])
        return {
            "google.protobuf.Struct": {"type": "object"},
            "google.protobuf.Value": {},
            "google.protobuf.ListValue": {"type": "array"},
            "google.protobuf.Timestamp": {"type": "string", "description": "RFC 3339 time"},
            "google.protobuf.Duration": {"type": "string", "description": "seconds, e.g. 1.5s"},
            "google.protobuf.FieldMask": {"type": "string"},
            "google.protobuf.Any": {"type": "object"},
            "google.protobuf.Empty": {"type": "object"},
        }.get(name)

    def field_schema(self, field: FieldDescriptor, *, nullable: bool = True) -> dict[str, Any]:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            schema = {
                "type": "object",
                "additionalProperties": self.field_schema(value_field, nullable=False),
            }
        elif field.is_repeated:
            schema = {"type": "array", "items": self._single(field)}
        else:
            schema = self._single(field)
        if nullable and schema:
            return {"anyOf": [schema, {"type": "null"}]}
        return schema

    def _single(self, field: FieldDescriptor) -> dict[str, Any]:
        if field.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
            return self.message_ref(field.message_type)
        return _scalar_schema(field.type, field)

    def _message_schema(self, desc: Descriptor) -> dict[str, Any]:
        properties = {f.name: self.field_schema(f) for f in desc.fields}
        return {"type": "object", "properties": properties}


def _path_fields(template: str) -> set[str]:
    return {v.split(".", 1)[0] for v in _VAR_RE.findall(template)}


def _query_parameters(request_desc: Descriptor, template: str) -> list[dict]:
    """Top-level scalar (and repeated scalar) request fields not bound in the path."""
    bound = _path_fields(template)
    params = []
    for field in request_desc.fields:
        if field.name in bound or field.type in (
            FieldDescriptor.TYPE_MESSAGE,
            FieldDescriptor.TYPE_GROUP,
        ):
            continue
        if field.type in _INT_RANGES:
            low, high = _INT_RANGES[field.type]
            schema: dict[str, Any] = {"type": "integer", "minimum": low, "maximum": high}
        elif field.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
            schema = {"type": "number"}
            if field.type == FieldDescriptor.TYPE_FLOAT:
                schema.update(minimum=-_FLOAT32_MAX, maximum=_FLOAT32_MAX)
        elif field.type == FieldDescriptor.TYPE_BOOL:
            # The query parser takes true/false/1/0 in any case, and an empty value as false.
            schema = {
                "anyOf": [
                    {"type": "boolean"},
                    {"type": "string", "pattern": "^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|1|0|)$"},
                ]
            }
        else:
            schema = {"type": "string"}
        if field.is_repeated:
            schema = {"type": "array", "items": schema}
        params.append(
            {
                "name": field.name,
                "in": "query",
                "required": False,
                "schema": schema,
                "explode": True,
            }
        )
    return params


def build_openapi() -> dict[str, Any]:
    """The document for the RPCs implemented in this process (see module doc)."""

    done = implemented()
    specs = all_rpcs()
    builder = _Builder()
    request_builder = _Builder(inline_depth=REQUEST_INLINE_DEPTH)
    paths: dict[str, dict[str, Any]] = {}
    for template, verbs in sorted(route_table().items()):
        for verb, (rpc_name, body_rule) in sorted(verbs.items()):
            if rpc_name not in done:
                continue
            spec = specs[rpc_name]
            request_desc = spec.request_cls.DESCRIPTOR
            parameters = [
                {
                    "name": path_param_name(var),
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "minLength": 1, "pattern": "^[^/]+$"},
                }
                for var in _VAR_RE.findall(template)
            ]
            if verb in ("get", "delete") and not body_rule:
                parameters += _query_parameters(request_desc, template)
            operation: dict[str, Any] = {
                "operationId": f"{rpc_name}__{verb}__{path_param_name(template).strip('/').replace('/', '_')}",
                "summary": rpc_name,
                "tags": [rpc_name],
                "parameters": parameters,
                "security": [{SECURITY_SCHEME: []}],
                "responses": {
                    "default": {
                        "description": f"{spec.response_cls.DESCRIPTOR.name}; `status.code` is the "
                        "Clarifai status code (HTTP status mirrors it)",
                        "content": {
                            "application/json": {
                                "schema": builder.message_ref(spec.response_cls.DESCRIPTOR)
                            }
                        },
                    }
                },
            }
            if body_rule and verb != "get":
                operation["requestBody"] = {
                    "required": False,
                    "content": {
                        "application/json": {"schema": request_builder.message_ref(request_desc)}
                    },
                }
            paths.setdefault(openapi_path(template), {})[verb] = operation
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Collectors API (Clarifai-compatible)",
            "version": "v2",
            "description": "The REST endpoints this server implements, generated from the "
            "clarifai-grpc descriptors. Authenticate with `Authorization: Key <secret>`.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": builder.components,
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "`Key <secret>` with a personal access token or app key",
                }
            },
        },
    }


@functools.cache
def cached_openapi() -> dict[str, Any]:
    return build_openapi()


@require_GET
def openapi_view(request):
    return JsonResponse(cached_openapi(), json_dumps_params={"ensure_ascii": False})
