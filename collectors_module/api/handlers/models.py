"""Models: PostModels, ListModels, GetModel, GetModelVersion, ListModelVersions, PostModelVersions,
DeleteModel, DeleteModels (refused while a workflow or a collector uses the model).

Runners of new models come from `model.model_version.metadata` (see inference.services):
{"runner": "remote:openai-chat", "url": "...", "model": "..."} or {"runner": "builtin:<name>"};
operator model types get "operator:<type>" by themselves.
"""

from __future__ import annotations

from clarifai_grpc.grpc.api import resources_pb2, service_pb2
from clarifai_grpc.grpc.api.status import status_pb2

from collectors_module.api.dispatch import rpc
from collectors_module.core.errors import SC, ApiError
from collectors_module.core.pagination import paginate
from collectors_module.inference import selectors, services
from collectors_module.inference.convert import model_to_pb, model_version_to_pb


def _latest(model):
    # `versions` is prefetched newest first by the list selectors
    versions = list(model.versions.all())
    return versions[0] if versions else None


@rpc("PostModels")
def post_models(ctx, req: service_pb2.PostModelsRequest):
    app = ctx.app(write=True)
    models = list(req.models) or ([req.model] if req.HasField("model") else [])
    if len(models) != 1:
        raise ApiError(
            SC.MODEL_INVALID_REQUEST, "PostModels takes exactly one model (in `models` or `model`)"
        )
    model = services.model_create(app=app, model_pb=models[0])
    return service_pb2.SingleModelResponse(
        model=model_to_pb(model, version=model.latest_version(), viewer=ctx.user)
    )


@rpc("ListModels")
def list_models(ctx, req: service_pb2.ListModelsRequest):
    if ctx.app_id:
        qs = selectors.models_of_app(ctx.app(), ctx.user, model_type_id=req.model_type_id)
    else:
        qs = selectors.models_of_user(ctx.owner_user_id, ctx.user, model_type_id=req.model_type_id)
    page = paginate(qs, req.page, req.per_page)
    return service_pb2.MultiModelResponse(
        models=[model_to_pb(m, version=_latest(m), viewer=ctx.user) for m in page]
    )


@rpc("GetModel")
def get_model(ctx, req: service_pb2.GetModelRequest):
    if req.version_id:
        version = selectors.model_version_for_request(
            ctx, req, model_id=req.model_id, version_id=req.version_id
        )
        model = version.model
    else:
        model = selectors.model_for_request(ctx, req, model_id=req.model_id)
        version = model.latest_version()
    return service_pb2.SingleModelResponse(
        model=model_to_pb(model, version=version, viewer=ctx.user)
    )


@rpc("GetModelOutputInfo")
def get_model_output_info(ctx, req: service_pb2.GetModelRequest):
    return get_model(ctx, req)


@rpc("GetModelVersion")
def get_model_version(ctx, req: service_pb2.GetModelVersionRequest):
    version = selectors.model_version_for_request(
        ctx, req, model_id=req.model_id, version_id=req.version_id
    )
    return service_pb2.SingleModelVersionResponse(
        model_version=model_version_to_pb(version, viewer=ctx.user)
    )


@rpc("ListModelVersions")
def list_model_versions(ctx, req: service_pb2.ListModelVersionsRequest):
    model = selectors.model_for_request(ctx, req, model_id=req.model_id)
    page = paginate(selectors.versions_of_model(model), req.page, req.per_page)
    out = []
    for version in page:
        version.model = model
        out.append(model_version_to_pb(version, viewer=ctx.user))
    return service_pb2.MultiModelVersionResponse(model_versions=out)


@rpc("PostModelVersions")
def post_model_versions(ctx, req: service_pb2.PostModelVersionsRequest):
    model = selectors.model_for_request(ctx, req, model_id=req.model_id, write=True)
    if len(req.model_versions) > 1:
        raise ApiError(
            SC.MODEL_INVALID_REQUEST, "PostModelVersions takes at most one model version"
        )
    version_pb = req.model_versions[0] if req.model_versions else None
    version = services.model_version_create(
        model=model, version_pb=version_pb or resources_pb2.ModelVersion()
    )
    model.refresh_from_db(fields=["modified_at"])
    return service_pb2.SingleModelResponse(
        model=model_to_pb(model, version=version, viewer=ctx.user)
    )


@rpc("DeleteModel")
def delete_model(ctx, req: service_pb2.DeleteModelRequest):
    services.model_delete(app=ctx.app(write=True), model_id=req.model_id)
    return status_pb2.BaseResponse()


@rpc("DeleteModels")
def delete_models(ctx, req: service_pb2.DeleteModelsRequest):
    services.models_delete(app=ctx.app(write=True), ids=list(req.ids), delete_all=req.delete_all)
    return status_pb2.BaseResponse()
