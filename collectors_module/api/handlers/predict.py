"""PostModelOutputs on all four path forms (with/without user+app, with/without version)."""

from __future__ import annotations

from clarifai_grpc.grpc.api import service_pb2
from google.protobuf import json_format

from collectors_module.api.dispatch import rpc
from collectors_module.core.errors import SC, ApiError, make_status
from collectors_module.inference import conf, selectors, services
from collectors_module.inference.runners.registry import is_runnable


def request_params(req: service_pb2.PostModelOutputsRequest) -> dict:
    """Per-request `model.output_info.params` and `output_config` (max_concepts, min_value, ...)."""
    if not req.HasField("model") or not req.model.HasField("output_info"):
        return {}
    info = req.model.output_info
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
    outputs = services.predict(
        caller=ctx.user,
        model_version=version,
        inputs=list(req.inputs),
        params=request_params(req),
        request_id=ctx.request_id,
    )
    response = service_pb2.MultiOutputResponse(outputs=outputs)
    response.status.CopyFrom(overall_status(outputs))
    return response
