"""Writers for apps."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import ProtectedError, RestrictedError

from collectors_module.core.errors import SC, ApiError
from collectors_module.core.ids import validate_id

from .models import App, Visibility


def app_create(
    *, owner, app_id: str, description: str = "", visibility: int = Visibility.PRIVATE
) -> App:
    """Create an app for `owner`; a taken id raises DATABASE_DUPLICATE_KEY."""
    validate_id(app_id, "app id", field="app_id")
    if visibility not in Visibility.values:
        raise ApiError(
            SC.CONN_INVALID_REQUEST, f"Unknown visibility {visibility}", field="visibility"
        )
    try:
        with transaction.atomic():
            return App.objects.create(
                owner=owner, public_id=app_id, description=description[:512], visibility=visibility
            )
    except IntegrityError as exc:
        raise ApiError(
            SC.DATABASE_DUPLICATE_KEY, f"App '{app_id}' already exists", field="app_id"
        ) from exc


def app_delete(*, app: App) -> None:
    """Delete an app and everything in it (inputs and their blobs, models, workflows, collectors)."""
    from collectors_module.inputs.services import app_blobs_purge_on_commit

    try:
        with transaction.atomic():
            app_blobs_purge_on_commit(app=app)
            app.delete()
    except (RestrictedError, ProtectedError) as exc:
        # Another app's workflow uses one of this app's models: say which, delete nothing.
        from collectors_module.workflows.selectors import workflows_using_models_of_app

        users = ", ".join(str(w) for w in workflows_using_models_of_app(app)[:5]) or "another app"
        raise ApiError(
            SC.CONN_INVALID_REQUEST,
            f"App '{app.public_id}' cannot be deleted: its models are used by workflows ({users}); "
            "remove them from those workflows first",
        ) from exc
