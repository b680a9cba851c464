"""Inputs: PostInputs, ListInputs, GetInput, DeleteInput, DeleteInputs, GetInputCount.

An app's inputs are visible only to its owner (even in a public app): every handler resolves the
app with `write=True`, so anybody else gets 11101.
"""

from __future__ import annotations

from clarifai_grpc.grpc.api import resources_pb2, service_pb2
from clarifai_grpc.grpc.api.status import status_pb2

from collectors_module.api.dispatch import rpc
from collectors_module.core.errors import SC, ApiError, make_status
from collectors_module.core.pagination import paginate
from collectors_module.datasets import selectors as dataset_selectors
from collectors_module.datasets import services as dataset_services
from collectors_module.inputs import selectors, services
from collectors_module.inputs.convert import input_to_pb

MAX_IDS_FILTER = 1000


def _batch_status(codes: list[int], errors: list[ApiError]):
    failed = [c for c in codes if c != SC.SUCCESS]
    if not failed:
        return make_status(SC.SUCCESS)
    if len(failed) < len(codes):
        return make_status(SC.MIXED_STATUS, details=f"{len(failed)} of {len(codes)} inputs failed")
    if len(set(failed)) == 1:
        first = errors[0]
        details = (
            first.details if len(codes) == 1 else f"all {len(codes)} inputs failed: {first.details}"
        )
        return make_status(first.code, first.description, details)
    return make_status(SC.FAILURE, details=f"all {len(codes)} inputs failed")


@rpc("PostInputs")
def post_inputs(ctx, req: service_pb2.PostInputsRequest):
    app = ctx.app(write=True)
    if not req.inputs:
        raise ApiError(
            SC.INPUT_INVALID_REQUEST, "inputs must hold at least one input", field="inputs"
        )
    # Input.dataset_ids: the datasets must exist before anything is written (11101 otherwise).
    datasets = {
        d: dataset_selectors.dataset_for_app(app, d) for pb in req.inputs for d in pb.dataset_ids
    }
    results = services.inputs_post(
        app=app, inputs=list(req.inputs), id_conflict_resolution=req.input_id_conflict_resolution
    )
    for dataset_id, dataset in datasets.items():
        dataset_services.dataset_inputs_add_rows(
            dataset=dataset,
            input_pks=[
                r.pk
                for pb, r in zip(req.inputs, results, strict=True)
                if not isinstance(r, ApiError) and dataset_id in pb.dataset_ids
            ],
        )
    response = service_pb2.MultiInputResponse()
    codes: list[int] = []
    errors: list[ApiError] = []
    for pb, result in zip(req.inputs, results, strict=True):
        if isinstance(result, ApiError):
            item = response.inputs.add(id=pb.id)
            item.status.CopyFrom(result.to_status())
            codes.append(result.code)
            errors.append(result)
        else:
            response.inputs.append(input_to_pb(result))
            codes.append(SC.SUCCESS)
    response.status.CopyFrom(_batch_status(codes, errors))
    return response


@rpc("ListInputs")
def list_inputs(ctx, req: service_pb2.ListInputsRequest):
    rows = selectors.inputs_of_app(ctx.app(write=True))
    if req.ids:
        if len(req.ids) > MAX_IDS_FILTER:
            raise ApiError(SC.INPUT_INVALID_REQUEST, f"at most {MAX_IDS_FILTER} ids", field="ids")
        rows = rows.filter(public_id__in=list(req.ids))
    if req.HasField("status") and req.status.code:
        rows = rows.filter(status_code=req.status.code)
    page = paginate(rows, req.page, req.per_page)
    return service_pb2.MultiInputResponse(inputs=[input_to_pb(r) for r in page])


@rpc("GetInput")
def get_input(ctx, req: service_pb2.GetInputRequest):
    row = selectors.input_for_app(ctx.app(write=True), req.input_id)
    return service_pb2.SingleInputResponse(input=input_to_pb(row))


@rpc("DeleteInput")
def delete_input(ctx, req: service_pb2.DeleteInputRequest):
    services.input_delete(app=ctx.app(write=True), input_id=req.input_id)
    return status_pb2.BaseResponse()


@rpc("DeleteInputs")
def delete_inputs(ctx, req: service_pb2.DeleteInputsRequest):
    services.inputs_delete(app=ctx.app(write=True), ids=list(req.ids))
    return status_pb2.BaseResponse()


@rpc("GetInputCount")
def get_input_count(ctx, req: service_pb2.GetInputCountRequest):
    by_status = selectors.input_count(ctx.app(write=True))
    counts = resources_pb2.InputCount(
        processed=by_status.get(SC.INPUT_DOWNLOAD_SUCCESS, 0),
        to_process=by_status.get(SC.INPUT_DOWNLOAD_PENDING, 0),
        processing=by_status.get(SC.INPUT_DOWNLOAD_IN_PROGRESS, 0),
        errors=sum(
            n
            for code, n in by_status.items()
            if code
            not in (
                SC.INPUT_DOWNLOAD_SUCCESS,
                SC.INPUT_DOWNLOAD_PENDING,
                SC.INPUT_DOWNLOAD_IN_PROGRESS,
            )
        ),
    )
    return service_pb2.SingleInputCountResponse(counts=counts)
