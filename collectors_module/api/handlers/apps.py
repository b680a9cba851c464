"""Apps: PostApps, ListApps, GetApp, DeleteApp, PatchApp, PatchApps.

Patches change description, notes, visibility and metadata (see applications.services.apps_patch);
only the owner may patch (the app is resolved with write=True; anybody else gets 11101).
"""

from __future__ import annotations

from clarifai_grpc.grpc.api import service_pb2
from clarifai_grpc.grpc.api.status import status_pb2

from collectors_module.api.dispatch import rpc
from collectors_module.applications import selectors, services
from collectors_module.core.errors import SC, ApiError
from collectors_module.core.pagination import paginate

from .convert import app_to_pb


@rpc("PostApps")
def post_apps(ctx, req: service_pb2.PostAppsRequest):
    if ctx.owner_user_id != ctx.user.username:
        raise ApiError(SC.CONN_DOES_NOT_EXIST, f"User '{ctx.owner_user_id}' does not exist")
    if not req.apps:
        raise ApiError(SC.CONN_INVALID_REQUEST, "apps must hold at least one app")
    created = [
        services.app_create(
            owner=ctx.user,
            app_id=a.id,
            description=a.description,
            visibility=a.visibility.gettable or 10,
        )
        for a in req.apps
    ]
    return service_pb2.MultiAppResponse(apps=[app_to_pb(a) for a in created])


@rpc("ListApps")
def list_apps(ctx, req: service_pb2.ListAppsRequest):
    if ctx.owner_user_id != ctx.user.username:
        raise ApiError(SC.CONN_DOES_NOT_EXIST, f"User '{ctx.owner_user_id}' does not exist")
    apps = paginate(
        selectors.apps_of_user(ctx.user).select_related("owner"), req.page, req.per_page
    )
    return service_pb2.MultiAppResponse(apps=[app_to_pb(a) for a in apps])


@rpc("GetApp")
def get_app(ctx, req: service_pb2.GetAppRequest):
    return service_pb2.SingleAppResponse(app=app_to_pb(ctx.app()))


@rpc("DeleteApp")
def delete_app(ctx, req: service_pb2.DeleteAppRequest):
    services.app_delete(app=ctx.app(write=True))
    return status_pb2.BaseResponse()


def _metadata_action(req) -> str:
    return req.metadata_action.op if req.HasField("metadata_action") else ""


@rpc("PatchApp")
def patch_app(ctx, req: service_pb2.PatchAppRequest):
    app = ctx.app(write=True)
    patched = services.app_patch(
        app=app, app_pb=req.app, action=req.action, metadata_action=_metadata_action(req)
    )
    return service_pb2.SingleAppResponse(app=app_to_pb(patched))


@rpc("PatchApps")
def patch_apps(ctx, req: service_pb2.PatchAppsRequest):
    if ctx.owner_user_id != ctx.user.username:
        raise ApiError(SC.CONN_DOES_NOT_EXIST, f"User '{ctx.owner_user_id}' does not exist")
    if not req.apps:
        raise ApiError(SC.CONN_INVALID_REQUEST, "apps must hold at least one app", field="apps")
    patches = []
    for pb in req.apps:
        if not pb.id:
            raise ApiError(SC.CONN_INVALID_REQUEST, "each app needs its id", field="id")
        app = selectors.app_for_user(
            ctx.user, owner_user_id=ctx.owner_user_id, app_id=pb.id, write=True
        )
        patches.append((app, pb))
    patched = services.apps_patch(
        owner=ctx.user, patches=patches, action=req.action, metadata_action=_metadata_action(req)
    )
    return service_pb2.MultiAppResponse(apps=[app_to_pb(a) for a in patched])
