"""Tenant-scoped reads of models and versions.

The owner reads and writes; anyone reads a PUBLIC model in a PUBLIC app (such as builtin/main);
everything else is "does not exist" (11101), never "forbidden".

The predict path's lookups (`model_version_for_user`, the short-path fallback) come from a
per-process cache cleared when models, versions, apps or users change in any process (seen
within CACHE_CHECK_SECONDS; `core.generations`); on a hit no SQL is compiled or sent. Cached
versions are shared between requests: treat them as read-only.
"""

from __future__ import annotations

from django.db.models import Prefetch, Q, QuerySet

from collectors_module.accounts.models import User
from collectors_module.applications.models import App, Visibility
from collectors_module.core import generations
from collectors_module.core.errors import SC, ApiError, not_found

from .models import Model, ModelVersion
from .runners.builtin import BUILTIN_APP_ID, BUILTIN_USER_ID

_versions = generations.SyncedCache(
    "model-versions", generations.tables_of(Model, ModelVersion, App, User)
)
_has_model = generations.SyncedCache("model-exists", generations.tables_of(Model, App, User))


def model_visible_to(model: Model, user, *, write: bool = False) -> bool:
    if model.app.owner_id == user.pk:
        return True
    return not write and model.visibility == Visibility.PUBLIC and model.app.is_public


def _public_q(prefix: str = "") -> Q:
    return Q(
        **{f"{prefix}visibility": Visibility.PUBLIC, f"{prefix}app__visibility": Visibility.PUBLIC}
    )


def model_for_user(
    user, *, owner_user_id: str, app_id: str, model_id: str, write: bool = False
) -> Model:
    """The model `owner_user_id/app_id/model_id` if `user` may see (write: change) it, else 11101."""
    model = (
        Model.objects.select_related("app__owner")
        .filter(app__owner__username=owner_user_id, app__public_id=app_id, public_id=model_id)
        .first()
    )
    if model is None or not model_visible_to(model, user, write=write):
        raise not_found("Model", model_id)
    return model


def model_version_for_user(
    user, *, owner_user_id: str, app_id: str, model_id: str, version_id: str = ""
) -> ModelVersion:
    """The version (latest when `version_id` is empty) with model, app and owner loaded: from the
    cache, or one query."""
    version = _versions.get(
        (owner_user_id, app_id, model_id, version_id),
        lambda: _load_version(owner_user_id, app_id, model_id, version_id),
    )
    if version is None and version_id:
        # Say which one is missing, without telling apart "hidden" and "missing" models.
        model_for_user(user, owner_user_id=owner_user_id, app_id=app_id, model_id=model_id)
        raise not_found("Model version", f"{model_id}/{version_id}")
    if version is None or not model_visible_to(version.model, user):
        raise not_found("Model", model_id)
    return version


def _load_version(owner_user_id: str, app_id: str, model_id: str, version_id: str):
    qs = ModelVersion.objects.select_related("model__app__owner").filter(
        model__app__owner__username=owner_user_id,
        model__app__public_id=app_id,
        model__public_id=model_id,
    )
    if version_id:
        qs = qs.filter(public_id=version_id)
    return qs.order_by("-created_at", "-pk").first()


def builtin_model_version(user, *, model_id: str, version_id: str = "") -> ModelVersion:
    """A model of the public builtin/main app (the fallback of short `/v2/models/...` paths)."""
    return model_version_for_user(
        user,
        owner_user_id=BUILTIN_USER_ID,
        app_id=BUILTIN_APP_ID,
        model_id=model_id,
        version_id=version_id,
    )


def _with_versions(qs: QuerySet) -> QuerySet:
    return qs.select_related("app__owner").prefetch_related(
        Prefetch("versions", queryset=ModelVersion.objects.order_by("-created_at", "-pk"))
    )


def models_of_app(app, user, *, model_type_id: str = "") -> QuerySet:
    """Models of `app` that `user` may see (all for the owner, public ones for others)."""
    qs = Model.objects.filter(app=app)
    if app.owner_id != user.pk:
        qs = qs.filter(_public_q())
    if model_type_id:
        qs = qs.filter(model_type_id=model_type_id)
    return _with_versions(qs).order_by("public_id", "pk")


def models_of_user(owner_user_id: str, user, *, model_type_id: str = "") -> QuerySet:
    """Models across `owner_user_id`'s apps that `user` may see."""
    qs = Model.objects.filter(app__owner__username=owner_user_id)
    if owner_user_id != user.username:
        qs = qs.filter(_public_q())
    if model_type_id:
        qs = qs.filter(model_type_id=model_type_id)
    return _with_versions(qs).order_by("app__public_id", "public_id", "pk")


def versions_of_model(model: Model) -> QuerySet:
    return model.versions.order_by("-created_at", "-pk")


def _names_app(request) -> bool:
    return request.HasField("user_app_id") and bool(request.user_app_id.app_id)


def _may_fall_back(ctx, request, model_id: str) -> bool:
    """Short paths (`/v2/models/...`) fall back to builtin/main when the key's app has no such model."""
    if _names_app(request):
        return False
    if not ctx.app_id:
        return True
    key = (ctx.owner_user_id, ctx.app_id, model_id)
    return not _has_model.get(
        key,
        lambda: Model.objects.filter(
            app__owner__username=ctx.owner_user_id, app__public_id=ctx.app_id, public_id=model_id
        ).exists(),
    )


def model_version_for_request(ctx, request, *, model_id: str, version_id: str = "") -> ModelVersion:
    """The version a request names: in the request's app, or builtin/main for short paths."""
    if not model_id:
        raise ApiError(SC.CONN_INVALID_REQUEST, "model_id is required", field="model_id")
    if ctx.app_id:
        try:
            return model_version_for_user(
                ctx.user,
                owner_user_id=ctx.owner_user_id,
                app_id=ctx.app_id,
                model_id=model_id,
                version_id=version_id,
            )
        except ApiError:
            if not _may_fall_back(ctx, request, model_id):
                raise
    return builtin_model_version(ctx.user, model_id=model_id, version_id=version_id)


def model_for_request(ctx, request, *, model_id: str, write: bool = False) -> Model:
    """The model a request names (write: only in the caller's own app, no builtin fallback)."""
    if not model_id:
        raise ApiError(SC.CONN_INVALID_REQUEST, "model_id is required", field="model_id")
    if ctx.app_id:
        try:
            return model_for_user(
                ctx.user,
                owner_user_id=ctx.owner_user_id,
                app_id=ctx.app_id,
                model_id=model_id,
                write=write,
            )
        except ApiError:
            if write or not _may_fall_back(ctx, request, model_id):
                raise
    elif write:
        ctx.app(write=True)  # raises "this request needs an app"
    return model_for_user(
        ctx.user, owner_user_id=BUILTIN_USER_ID, app_id=BUILTIN_APP_ID, model_id=model_id
    )
