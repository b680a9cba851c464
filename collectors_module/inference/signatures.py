"""Method signatures of model versions, in the form Clarifai's Python SDK reads them.

The SDK (`clarifai` 12.x, `Model.predict(image=...)`, `Model.predict(text=...)`, the model client)
first reads `model_version.method_signatures` (GetModelVersion) or, failing that, sends one input
whose `data.metadata._method_name` is `_GET_SIGNATURES`. It then calls a method by sending
inputs whose `data.parts` hold one part per argument (`part.id` = the argument's name) and whose
`data.metadata._method_name` names the method; it reads the result from the output's data (the
first output field may be inlined: `data.concepts`, `data.text` or `data.regions`).

Every runnable model here has one method, `predict`, UNARY_UNARY, with one argument named after
its input kind and a return type after its output kind:

    visual-classifier   predict(image: Image) -> List[Concept]
    visual-detector     predict(image: Image) -> List[Region]
    image-to-text       predict(image: Image) -> Text
    text-classifier     predict(text: Text)   -> List[Concept]

Pure: protobuf in, protobuf out, no database.
"""

from __future__ import annotations

import json

from clarifai_grpc.grpc.api import resources_pb2
from google.protobuf import json_format

from collectors_module.core.errors import SC, ApiError

METHOD_KEY = "_method_name"
GET_SIGNATURES = "_GET_SIGNATURES"
PREDICT = "predict"

_T = resources_pb2.ModelTypeField.DataType

# model type -> (argument name, argument type, return type, element type of a list return)
_SHAPES: dict[str, tuple[str, int, int, int]] = {
    "visual-classifier": ("image", _T.IMAGE, _T.LIST, _T.CONCEPT),
    "visual-detector": ("image", _T.IMAGE, _T.LIST, _T.REGION),
    "image-to-text": ("image", _T.IMAGE, _T.TEXT, 0),
    "text-classifier": ("text", _T.TEXT, _T.LIST, _T.CONCEPT),
    "visual-embedder": ("image", _T.IMAGE, _T.NDARRAY, 0),
}
_DESCRIPTIONS = {
    "visual-classifier": "Concepts for an image, highest value first.",
    "visual-detector": "Regions found in an image, each with its box and concepts.",
    "image-to-text": "Text for an image.",
    "text-classifier": "Concepts for a text, highest value first.",
    "visual-embedder": "The image's embedding (data.embeddings, L2-normalised).",
}


def _runnable(runner: str) -> bool:
    return runner.startswith(("builtin:", "remote:"))


def method_signatures(model_type_id: str, runner: str) -> list[resources_pb2.MethodSignature]:
    """The signatures of a version with this model type and runner ([] when it cannot predict:
    operators, models without a runner, model types with no input/output mapping here)."""
    shape = _SHAPES.get(model_type_id)
    if shape is None or not _runnable(runner):
        return []
    arg_name, arg_type, ret_type, elem_type = shape
    sig = resources_pb2.MethodSignature(
        name=PREDICT,
        method_type=resources_pb2.RunnerMethodType.UNARY_UNARY,
        description=_DESCRIPTIONS[model_type_id],
    )
    sig.input_fields.add(name=arg_name, type=arg_type, required=True)
    ret = sig.output_fields.add(name="return", type=ret_type)
    if elem_type:
        ret.type_args.add(name="return_item", type=elem_type)
    return [sig]


def signatures_json(signatures: list[resources_pb2.MethodSignature]) -> str:
    """What the SDK expects in `data.text.raw` of a `_GET_SIGNATURES` call: {name: signature}."""
    return json.dumps({s.name: json_format.MessageToDict(s) for s in signatures})


def method_name(data: resources_pb2.Data) -> str:
    """The `_method_name` an SDK put in an input's metadata ("" for a plain Clarifai input)."""
    if METHOD_KEY not in data.metadata.fields:
        return ""
    value = data.metadata.fields[METHOD_KEY]
    return value.string_value if value.WhichOneof("kind") == "string_value" else "?"


def asks_for_signatures(inputs) -> bool:
    return any(method_name(i.data) == GET_SIGNATURES for i in inputs)


def _without_method(data: resources_pb2.Data) -> resources_pb2.Data:
    out = resources_pb2.Data()
    out.CopyFrom(data)
    if METHOD_KEY in out.metadata.fields:
        del out.metadata.fields[METHOD_KEY]
    if not out.metadata.fields:
        out.ClearField("metadata")
    return out


def _argument(part_data: resources_pb2.Data, arg_type: int, name: str) -> resources_pb2.Data:
    """The plain `Data` (image or text) an SDK-serialised argument stands for."""
    out = resources_pb2.Data()
    if arg_type == _T.IMAGE and part_data.HasField("image"):
        out.image.CopyFrom(part_data.image)
        return out
    if arg_type == _T.TEXT:
        if part_data.HasField("text"):
            out.text.CopyFrom(part_data.text)
            return out
        if part_data.string_value:
            out.text.raw = part_data.string_value
            return out
    kind = "an image" if arg_type == _T.IMAGE else "a text"
    raise ApiError(SC.INPUT_INVALID_ARGUMENT, f"argument '{name}' must be {kind}", field=name)


def unpack_input(
    inp: resources_pb2.Input, signatures: list[resources_pb2.MethodSignature]
) -> resources_pb2.Input:
    """A plain Clarifai input for an SDK method call (or the input itself, minus `_method_name`,
    when it carries its data inline). ApiError(MODEL_INVALID_ARGUMENT / INPUT_INVALID_ARGUMENT)
    for an unknown method, a missing or unknown argument."""
    name = method_name(inp.data)
    if not name and not inp.data.parts:
        return inp
    by_name = {s.name: s for s in signatures}
    if name and name not in by_name:
        methods = ", ".join(by_name) or "none (this model cannot predict)"
        raise ApiError(
            SC.MODEL_INVALID_ARGUMENT,
            f"This model has no method '{name[:64]}'; its methods: {methods}",
            field="data.metadata._method_name",
        )
    out = resources_pb2.Input(id=inp.id)
    data = _without_method(inp.data)
    if not data.parts:
        out.data.CopyFrom(data)
        return out
    sig = by_name.get(name or PREDICT)
    if sig is None:
        raise ApiError(
            SC.MODEL_INVALID_ARGUMENT,
            "data.parts names method arguments, but this model has no methods",
            field="data.parts",
        )
    fields = {f.name: f for f in sig.input_fields}
    parts = {p.id: p for p in data.parts}
    unknown = sorted(set(parts) - set(fields))
    if unknown:
        raise ApiError(
            SC.INPUT_INVALID_ARGUMENT,
            f"{sig.name}() got an unexpected argument '{unknown[0][:64]}'; it takes: "
            + ", ".join(fields),
            field="data.parts",
        )
    plain = resources_pb2.Data()
    for arg_name, spec in fields.items():
        part = parts.get(arg_name)
        if part is None:
            if spec.required:
                raise ApiError(
                    SC.INPUT_INVALID_ARGUMENT,
                    f"{sig.name}() is missing the argument '{arg_name}'",
                    field="data.parts",
                )
            continue
        plain.MergeFrom(_argument(part.data, spec.type, arg_name))
    if data.HasField("metadata"):
        plain.metadata.CopyFrom(data.metadata)
    out.data.CopyFrom(plain)
    return out
