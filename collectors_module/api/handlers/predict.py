"""PostModelOutputs on all four path forms (with/without user+app, with/without version).

Inputs written by Clarifai's Python SDK as method calls (`data.parts` + `_method_name`, see
inference.signatures) are turned into plain inputs first; `_GET_SIGNATURES` is answered with the
version's method signatures without running the model.
"""

from __future__ import annotations

from clarifai_grpc.grpc.api import resources_pb2, service_pb2
from google.protobuf import json_format

from collectors_module.api.dispatch import rpc
from collectors_module.core.errors import SC, ApiError, make_status
from collectors_module.core.ids import new_hex_id
from collectors_module.inference import conf, selectors, services, signatures
from collectors_module.inference.convert import model_ref_pb
from collectors_module.inference.runners.registry import is_runnable


def _info_params(info) -> dict:
    params = (
        json_format.MessageToDict(info.params, preserving_proto_field_name=True)
        if info.HasField("params")
        else {}
    )
    cfg = info.output_config
    if cfg.max_concepts:
        params["max_concepts"] = cfg.max_concepts
    if cfg.min_value:
        params["min_value"] = cfg.min_value
    if cfg.select_concepts:
        params["select_concepts"] = [{"id": c.id, "name": c.name} for c in cfg.select_concepts]
    return params


def request_params(req: service_pb2.PostModelOutputsRequest) -> dict:
    """Per-request params and `output_config` (max_concepts, min_value, select_concepts), from
    `model.output_info` and then `model.model_version.output_info` (where Clarifai's Python SDK
    puts `inference_params` and `output_config`; it wins)."""
    if not req.HasField("model"):
        return {}
    params: dict = {}
    if req.model.HasField("output_info"):
        params.update(_info_params(req.model.output_info))
    if req.model.HasField("model_version") and req.model.model_version.HasField("output_info"):
        params.update(_info_params(req.model.model_version.output_info))
    return params


def _signatures_response(version, sigs) -> service_pb2.MultiOutputResponse:
    """The answer to an SDK's `_GET_SIGNATURES` call: the signatures as JSON in data.text.raw."""
    out = resources_pb2.Output(id=new_hex_id(), model=model_ref_pb(version))
    out.status.CopyFrom(make_status(SC.SUCCESS))
    out.created_at.GetCurrentTime()
    out.data.text.raw = signatures.signatures_json(sigs)
    response = service_pb2.MultiOutputResponse(outputs=[out])
    response.status.CopyFrom(make_status(SC.SUCCESS))
    return response


def overall_status(outputs):
    codes = [o.status.code for o in outputs]
    if all(c == SC.SUCCESS for c in codes):
        return make_status(SC.SUCCESS)
    if any(c == SC.SUCCESS for c in codes):
        failed = sum(1 for c in codes if c != SC.SUCCESS)
        return make_status(SC.MIXED_STATUS, details=f"{failed} of {len(codes)} inputs failed")
    first = outputs[0].status
    if len(set(codes)) == 1:
        return make_status(first.code, first.description, first.details)
    return make_status(SC.FAILURE, details="Every input failed; see each output's status")


@rpc("PostModelOutputs")
def post_model_outputs(ctx, req: service_pb2.PostModelOutputsRequest):
    if not req.model_id:
        raise ApiError(
            SC.PREDICT_INVALID_REQUEST,
            "model_id is required (deployments are not supported)",
            field="model_id",
        )
    limit = conf.max_predict_inputs()
    if not req.inputs:
        raise ApiError(
            SC.PREDICT_INVALID_REQUEST, "inputs must hold at least one input", field="inputs"
        )
    if len(req.inputs) > limit:
        raise ApiError(
            SC.PREDICT_INVALID_REQUEST,
            f"{len(req.inputs)} inputs sent; at most {limit} inputs per request",
            field="inputs",
        )
    version = selectors.model_version_for_request(
        ctx, req, model_id=req.model_id, version_id=req.version_id
    )
    if not is_runnable(version.runner):
        kind = version.runner.partition(":")[0]
        why = (
            f"'{version.model.model_type_id}' is an operator: it runs inside workflows, not through "
            "PostModelOutputs"
            if kind == "operator"
            else "this model has no runner to compute outputs"
        )
        raise ApiError(
            SC.MODEL_INVALID_REQUEST, f"Model '{version.model.public_id}' cannot predict: {why}"
        )
    sigs = signatures.method_signatures(version.model.model_type_id, version.runner)
    if signatures.asks_for_signatures(req.inputs):
        return _signatures_response(version, sigs)
    inputs = [signatures.unpack_input(inp, sigs) for inp in req.inputs]
    outputs = services.predict(
        caller=ctx.user,
        model_version=version,
        inputs=inputs,
        params=request_params(req),
        request_id=ctx.request_id,
    )
    response = service_pb2.MultiOutputResponse(outputs=outputs)
    response.status.CopyFrom(overall_status(outputs))
    return response
