"""Tenant-scoped reads of apps. Another tenant's private app is 'does not exist'."""

from __future__ import annotations

from collectors_module.core.errors import SC, ApiError, not_found

from .models import App


def app_get(*, owner_user_id: str, app_id: str) -> App | None:
    return (
        App.objects.select_related("owner")
        .filter(owner__username=owner_user_id, public_id=app_id)
        .first()
    )


def app_visible_to(app: App, user, *, write: bool = False) -> bool:
    """Owners may read and write; anyone may read a public app (e.g. builtin/main)."""
    if app.owner_id == user.pk:
        return True
    return not write and app.is_public


def app_for_user(user, *, owner_user_id: str, app_id: str, write: bool = False) -> App:
    app = app_get(owner_user_id=owner_user_id, app_id=app_id)
    if app is None or not app_visible_to(app, user, write=write):
        raise not_found("App", f"{owner_user_id}/{app_id}")
    return app


def app_for_request(ctx, *, write: bool = False) -> App:
    if not ctx.app_id:
        raise ApiError(
            SC.CONN_INVALID_REQUEST,
            "This request needs an app: use /v2/users/{user_id}/apps/{app_id}/... with a personal "
            "access token, or an app key",
        )
    return app_for_user(ctx.user, owner_user_id=ctx.owner_user_id, app_id=ctx.app_id, write=write)


def apps_of_user(user):
    return App.objects.filter(owner=user).order_by("public_id")
