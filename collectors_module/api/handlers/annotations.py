"""Annotations: PostAnnotations, ListAnnotations, GetAnnotation, PatchAnnotations,
DeleteAnnotation, DeleteAnnotations.

A collector with `collect_outputs` stores the source model's outputs with each captured input; they
are annotations made by that model (`model_version_id` and `worker.model` name it). Like inputs,
an app's annotations are visible only to its owner: the app is resolved with `write=True`.
Collected outputs that a bulk writer stored without rows are imported before every read.
"""

from __future__ import annotations

from clarifai_grpc.grpc.api import service_pb2
from clarifai_grpc.grpc.api.status import status_pb2

from collectors_module.api.dispatch import rpc
from collectors_module.core.errors import SC, ApiError, make_status
from collectors_module.core.pagination import paginate
from collectors_module.inputs import selectors, services
from collectors_module.inputs.convert import annotation_to_pb

MAX_FILTER_IDS = 1000


def _pb(row, app):
    return annotation_to_pb(row, owner_user_id=app.owner.username)


def _own_app(ctx):
    app = ctx.app(write=True)
    services.annotations_import_pending(app=app)
    return app


def _filter(values, field: str) -> list[str]:
    values = [v for v in values if v]
    if len(values) > MAX_FILTER_IDS:
        raise ApiError(
            SC.ANNOTATION_INVALID_ARGUMENT, f"at most {MAX_FILTER_IDS} {field}", field=field
        )
    return values


@rpc("PostAnnotations")
def post_annotations(ctx, req: service_pb2.PostAnnotationsRequest):
    app = _own_app(ctx)
    rows = services.annotations_create(
        app=app, actor=ctx.user, annotation_pbs=list(req.annotations)
    )
    return service_pb2.MultiAnnotationResponse(annotations=[_pb(r, app) for r in rows])


@rpc("ListAnnotations")
def list_annotations(ctx, req: service_pb2.ListAnnotationsRequest):
    app = _own_app(ctx)
    if req.task_id or req.workflow_version_ids:
        raise ApiError(
            SC.ANNOTATION_INVALID_ARGUMENT,
            "task_id and workflow_version_ids filters are not supported by this server",
        )
    rows = selectors.annotations_of_app(
        app,
        ids=_filter(req.ids, "ids"),
        input_ids=_filter(req.input_ids, "input_ids"),
        user_ids=_filter(req.user_ids, "user_ids"),
        model_version_ids=_filter(req.model_version_ids, "model_version_ids"),
        status_codes=[s.code for s in req.statuses if s.code],
    )
    page = paginate(rows, req.page, req.per_page)
    return service_pb2.MultiAnnotationResponse(annotations=[_pb(r, app) for r in page])


@rpc("GetAnnotation")
def get_annotation(ctx, req: service_pb2.GetAnnotationRequest):
    app = _own_app(ctx)
    row = selectors.annotation_for_app(app, req.annotation_id, input_id=req.input_id)
    return service_pb2.SingleAnnotationResponse(annotation=_pb(row, app))


@rpc("PatchAnnotations")
def patch_annotations(ctx, req: service_pb2.PatchAnnotationsRequest):
    app = _own_app(ctx)
    rows, deleted = services.annotations_patch(
        app=app,
        annotation_pbs=list(req.annotations),
        action=req.action,
        delete_if_empty_data=req.delete_if_empty_data,
    )
    response = service_pb2.MultiAnnotationResponse(annotations=[_pb(r, app) for r in rows])
    if deleted:
        response.status.CopyFrom(
            make_status(
                SC.SUCCESS,
                details="deleted because their data became empty: " + ", ".join(deleted[:20]),
            )
        )
    return response


@rpc("DeleteAnnotation")
def delete_annotation(ctx, req: service_pb2.DeleteAnnotationRequest):
    app = _own_app(ctx)
    services.annotation_delete(app=app, input_id=req.input_id, annotation_id=req.annotation_id)
    return status_pb2.BaseResponse()


@rpc("DeleteAnnotations")
def delete_annotations(ctx, req: service_pb2.DeleteAnnotationsRequest):
    app = _own_app(ctx)
    services.annotations_delete(app=app, ids=list(req.ids), input_ids=list(req.input_ids))
    return status_pb2.BaseResponse()
