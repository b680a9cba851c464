"""Capture consent over the API (collectors.ext.v1.CollectorExtensions): capture grants (grant,
list, revoke; a personal access token of the caller who consents) and a model's opt-in that
collectors with a blank caller capture every caller's predictions (the model's owner).
"""

from __future__ import annotations

from collectors_module.accounts import selectors as account_selectors
from collectors_module.accounts import services as account_services
from collectors_module.api.dispatch import rpc
from collectors_module.api.proto import collectors_ext_pb2 as ext
from collectors_module.core.errors import SC, ApiError
from collectors_module.inference import services as inference_services
from collectors_module.inference.selectors import model_for_request


def _own_user(ctx) -> None:
    if ctx.owner_user_id != ctx.user.username:
        raise ApiError(SC.CONN_DOES_NOT_EXIST, f"User '{ctx.owner_user_id[:64]}' does not exist")


def _grant_pb(grant) -> ext.CaptureGrant:
    return ext.CaptureGrant(
        grantor_user_id=grant.grantor.username,
        grantee_user_id=grant.grantee.username,
        created_at=grant.created_at.isoformat().replace("+00:00", "Z"),
    )


def _grants(user) -> ext.MultiCaptureGrantResponse:
    return ext.MultiCaptureGrantResponse(
        given=[_grant_pb(g) for g in account_selectors.capture_grants_given(user)],
        received=[_grant_pb(g) for g in account_selectors.capture_grants_received(user)],
    )


@rpc("PostCaptureGrants")
def post_capture_grants(ctx, req: ext.PostCaptureGrantsRequest):
    _own_user(ctx)
    account_services.capture_grant_create(grantor=ctx.user, grantee_user_id=req.grantee_user_id)
    return _grants(ctx.user)


@rpc("ListCaptureGrants")
def list_capture_grants(ctx, req: ext.ListCaptureGrantsRequest):
    _own_user(ctx)
    return _grants(ctx.user)


@rpc("DeleteCaptureGrant")
def delete_capture_grant(ctx, req: ext.DeleteCaptureGrantRequest):
    _own_user(ctx)
    account_services.capture_grant_revoke(grantor=ctx.user, grantee_user_id=req.grantee_user_id)
    return _grants(ctx.user)


@rpc("PatchModelCaptureConsent")
def patch_model_capture_consent(ctx, req: ext.PatchModelCaptureConsentRequest):
    app = ctx.app(write=True)
    model = model_for_request(ctx, req, model_id=req.model_id, write=True)
    model = inference_services.model_set_capture_all_callers(
        app=app, model_id=model.public_id, value=req.capture_all_callers
    )
    return ext.ModelCaptureConsentResponse(
        model_id=model.public_id, capture_all_callers=model.capture_all_callers
    )
