"""Keys: PostKeys, ListKeys, GetKey, PatchKeys, DeleteKey, ListAppKeys, MyScopes.

Ids: PostKeys answers with `id` = the secret (shown once; it is what Clarifai clients keep as
their token). Every other response carries the key's public id and never the secret. PatchKeys
(id in the body) accepts either; GetKey and DeleteKey take the id from the URL path and accept
only the public id, so a live secret is never invited into a URL that access logs keep (a
secret there is refused without being looked up). DeleteKey revokes: the row stays (so a
collector using it can report "key revoked") but the API treats a revoked key as deleted.
"""

from __future__ import annotations

from datetime import UTC

from clarifai_grpc.grpc.api import resources_pb2, service_pb2
from clarifai_grpc.grpc.api.status import status_pb2
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from collectors_module.accounts import selectors, services
from collectors_module.accounts.models import Key, KeyType
from collectors_module.api.dispatch import rpc
from collectors_module.applications.selectors import app_for_user
from collectors_module.core.errors import SC, ApiError
from collectors_module.core.ids import looks_like_secret
from collectors_module.core.pagination import paginate

from .convert import app_to_pb, ts

_KEY_TYPES = {"", KeyType.PAT.value, KeyType.APP.value}


def key_to_pb(key: Key, *, secret: str = "") -> resources_pb2.Key:
    pb = resources_pb2.Key(
        id=secret or key.public_id,
        type=key.type,
        description=key.description,
        scopes=list(key.scopes or []),
    )
    if key.app_id is not None:
        pb.apps.append(app_to_pb(key.app))
    ts(pb.created_at, key.created_at)
    ts(pb.expires_at, key.expires_at)
    return pb


def _own_user(ctx) -> None:
    # Keys belong to users; another user's key list "does not exist", like any other tenant.
    if ctx.owner_user_id != ctx.user.username:
        raise ApiError(SC.CONN_DOES_NOT_EXIST, f"User '{ctx.owner_user_id[:64]}' does not exist")


def _public_id_only(key_id: str) -> None:
    if looks_like_secret(key_id):
        raise ApiError(
            SC.CONN_INVALID_REQUEST,
            "Name a key by its public id in a URL (ListKeys shows it); a secret belongs only in "
            "the Authorization header. If this secret was sent in a URL, treat it as leaked: "
            "delete the key by its public id and create a new one.",
            field="key_id",
        )


def _expires_at(key_pb: resources_pb2.Key):
    if not key_pb.HasField("expires_at") or (
        key_pb.expires_at.seconds == 0 and key_pb.expires_at.nanos == 0
    ):
        return None
    try:
        return key_pb.expires_at.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise ApiError(
            SC.CONN_INVALID_REQUEST, "expires_at is out of range", field="expires_at"
        ) from exc


def _spec(ctx, key_pb: resources_pb2.Key) -> services.KeySpec:
    if key_pb.type not in _KEY_TYPES:
        raise ApiError(
            SC.CONN_INVALID_REQUEST,
            f"type must be '{KeyType.PAT.value}' or '{KeyType.APP.value}'",
            field="type",
        )
    if key_pb.endpoints:
        raise ApiError(
            SC.CONN_INVALID_REQUEST,
            "endpoint-level scopes are not supported; list scope strings in 'scopes'",
            field="endpoints",
        )
    if len(key_pb.apps) > 1:
        raise ApiError(
            SC.CONN_INVALID_REQUEST, "an app key is bound to exactly one app", field="apps"
        )
    app = None
    if key_pb.apps:
        if key_pb.type == KeyType.PAT.value:
            raise ApiError(
                SC.CONN_INVALID_REQUEST,
                "a personal access token cannot be bound to an app",
                field="apps",
            )
        wanted = key_pb.apps[0]
        owner_user_id = wanted.user_id if wanted.user_id not in ("", "me") else ctx.user.username
        if not wanted.id:
            raise ApiError(SC.CONN_INVALID_REQUEST, "apps[0].id is required", field="apps")
        app = app_for_user(ctx.user, owner_user_id=owner_user_id, app_id=wanted.id, write=True)
    elif key_pb.type == KeyType.APP.value:
        raise ApiError(SC.CONN_INVALID_REQUEST, "an app key needs its app in 'apps'", field="apps")
    return services.KeySpec(
        scopes=list(key_pb.scopes),
        description=key_pb.description,
        app=app,
        expires_at=_expires_at(key_pb),
    )


@rpc("PostKeys")
def post_keys(ctx, req: service_pb2.PostKeysRequest):
    _own_user(ctx)
    specs = [_spec(ctx, k) for k in req.keys]
    created = services.keys_create(owner=ctx.user, specs=specs, granting_scopes=ctx.key.scopes)
    return service_pb2.MultiKeyResponse(keys=[key_to_pb(c.key, secret=c.secret) for c in created])


@rpc("ListKeys")
def list_keys(ctx, req: service_pb2.ListKeysRequest):
    _own_user(ctx)
    keys = selectors.api_keys_of_user(ctx.user)
    if req.type:
        if req.type not in _KEY_TYPES:
            raise ApiError(SC.CONN_INVALID_REQUEST, "unknown key type", field="type")
        keys = keys.filter(type=req.type)
    if req.not_expired:
        keys = keys.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
    if req.scopes:
        wanted = set(req.scopes)
        # Scopes live in a JSON list; filter in Python over this user's (few) keys.
        ids = [pk for pk, have in keys.values_list("pk", "scopes") if wanted <= set(have or [])]
        keys = keys.filter(pk__in=ids)
    page = paginate(keys.select_related("app__owner"), req.page, req.per_page)
    return service_pb2.MultiKeyResponse(keys=[key_to_pb(k) for k in page])


@rpc("ListAppKeys")
def list_app_keys(ctx, req: service_pb2.ListAppKeysRequest):
    app = ctx.app(write=True)  # only the owner sees an app's keys, even of a public app
    keys = selectors.api_keys_of_user(ctx.user).filter(app=app).select_related("app__owner")
    return service_pb2.MultiKeyResponse(
        keys=[key_to_pb(k) for k in paginate(keys, req.page, req.per_page)]
    )


@rpc("GetKey")
def get_key(ctx, req: service_pb2.GetKeyRequest):
    _own_user(ctx)
    _public_id_only(req.key_id)
    key = selectors.key_for_api(ctx.user, req.key_id, allow_secret=False)
    return service_pb2.SingleKeyResponse(key=key_to_pb(key))


@rpc("PatchKeys")
def patch_keys(ctx, req: service_pb2.PatchKeysRequest):
    _own_user(ctx)
    if not req.keys:
        raise ApiError(SC.CONN_INVALID_REQUEST, "keys must hold at least one key", field="keys")
    action = req.action or "overwrite"
    with transaction.atomic():
        updated = []
        for k in req.keys:
            key = selectors.key_for_api(ctx.user, k.id)
            same_app = (not k.apps) or (
                len(k.apps) == 1 and key.app_id is not None and k.apps[0].id == key.app.public_id
            )
            if not same_app or k.endpoints or (k.type and k.type != key.type):
                raise ApiError(
                    SC.CONN_INVALID_REQUEST,
                    "only description, scopes and expires_at of a key can be changed",
                )
            kwargs = {}
            # An overwrite that leaves out expires_at keeps the expiry (a patch never removes
            # one); an explicit empty expires_at asks for removal, which the service refuses.
            if k.HasField("expires_at"):
                kwargs["expires_at"] = _expires_at(k)
            updated.append(
                services.key_update(
                    owner=ctx.user,
                    key_public_id=key.public_id,
                    action=action,
                    description=k.description if (k.description or action == "overwrite") else None,
                    scopes=list(k.scopes) or None,
                    granting_scopes=ctx.key.scopes,
                    acting_key=ctx.key,
                    **kwargs,
                )
            )
    return service_pb2.MultiKeyResponse(keys=[key_to_pb(k) for k in updated])


@rpc("DeleteKey")
def delete_key(ctx, req: service_pb2.DeleteKeyRequest):
    _own_user(ctx)
    _public_id_only(req.key_id)
    key = selectors.key_for_api(ctx.user, req.key_id, allow_secret=False)
    services.key_revoke(owner=ctx.user, key_public_id=key.public_id)
    return status_pb2.BaseResponse()


@rpc("MyScopes")
def my_scopes(ctx, req: service_pb2.MyScopesRequest):
    response = service_pb2.MultiScopeResponse(scopes=list(ctx.key.scopes or []))
    if ctx.is_app_key:
        response.app.CopyFrom(app_to_pb(ctx.key.app))
    elif ctx.app_id:
        response.app.CopyFrom(app_to_pb(ctx.app()))
    return response
