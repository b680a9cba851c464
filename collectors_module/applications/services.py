"""Writers for apps."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import ProtectedError, RestrictedError
from google.protobuf import json_format

from collectors_module.core.errors import SC, ApiError
from collectors_module.core.ids import validate_id
from collectors_module.core.patching import (
    apply_to_dict,
    check_fields,
    check_metadata,
    patch_action,
)
from collectors_module.inputs.services import app_blobs_purge_on_commit

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


# PatchApp(s): what a patch may change. The id names the app (PatchAppsIds renames apps, which
# this server does not implement); everything else an App message carries is refused by name.
APP_PATCHABLE = ("description", "notes", "visibility", "metadata")
MAX_NOTES = 20_000


def app_patch(*, app: App, app_pb, action: str, metadata_action: str = "") -> App:
    """Patch one app (see `apps_patch`)."""
    return apps_patch(
        owner=app.owner, patches=[(app, app_pb)], action=action, metadata_action=metadata_action
    )[0]


def _patched_app(app: App, pb, action: str, metadata_action: str) -> dict:
    """The new column values of `app` for one patch (validated; nothing written)."""

    given = check_fields(
        pb,
        code=SC.CONN_INVALID_REQUEST,
        what=f"app '{app.public_id}'",
        patchable=APP_PATCHABLE,
        identity={"id": app.public_id, "user_id": app.owner.username, "name": app.public_id},
        ignored=("created_at", "modified_at"),
    )
    if not given:
        raise ApiError(
            SC.CONN_INVALID_REQUEST,
            f"app '{app.public_id}': nothing to patch (patchable: {', '.join(APP_PATCHABLE)})",
        )
    values: dict = {}
    if "description" in given:
        text = "" if action == "remove" else pb.description
        if len(text) > 512 or "\x00" in text:
            raise ApiError(
                SC.CONN_INVALID_REQUEST,
                "description must be at most 512 characters without NUL",
                field="description",
            )
        values["description"] = text
    if "notes" in given:
        text = "" if action == "remove" else pb.notes
        if len(text) > MAX_NOTES or "\x00" in text:
            raise ApiError(
                SC.CONN_INVALID_REQUEST,
                f"notes must be at most {MAX_NOTES} characters without NUL",
                field="notes",
            )
        values["notes"] = text
    if "visibility" in given:
        if action == "remove":
            raise ApiError(
                SC.CONN_INVALID_REQUEST, "visibility cannot be removed", field="visibility"
            )
        if pb.visibility.gettable not in Visibility.values:
            raise ApiError(
                SC.CONN_INVALID_REQUEST,
                f"Unknown visibility {pb.visibility.gettable}: use 10 (private) or 50 (public)",
                field="visibility",
            )
        values["visibility"] = pb.visibility.gettable
    if "metadata" in given:
        patch = json_format.MessageToDict(pb.metadata)
        values["metadata"] = check_metadata(
            apply_to_dict(metadata_action or action, app.metadata or {}, patch),
            code=SC.CONN_INVALID_REQUEST,
        )
    return values


def apps_patch(*, owner, patches: list, action: str, metadata_action: str = "") -> list[App]:
    """PatchApps: `patches` is [(app, App message)] of `owner`'s apps. action overwrite / merge
    (given fields replace the stored ones; metadata is replaced or merged key by key) or remove
    (given fields are cleared, metadata keys removed); `metadata_action` (merge / overwrite /
    remove) overrides the action for metadata. All or none; CONN_INVALID_REQUEST for unknown
    actions and for fields that cannot change."""

    action = patch_action(action, code=SC.CONN_INVALID_REQUEST, what="apps")
    if metadata_action:
        metadata_action = patch_action(
            metadata_action, code=SC.CONN_INVALID_REQUEST, what="app metadata"
        )
    if not patches:
        raise ApiError(SC.CONN_INVALID_REQUEST, "apps must hold at least one app", field="apps")
    seen = set()
    for app, _ in patches:
        if app.pk in seen:
            raise ApiError(SC.CONN_INVALID_REQUEST, f"App '{app.public_id}' is named twice")
        seen.add(app.pk)
    with transaction.atomic():  # a refused patch raises before anything is saved
        locked_apps = {
            a.pk: a
            for a in App.objects.select_for_update(of=("self",))
            .select_related("owner")
            .filter(pk__in=[app.pk for app, _ in patches])
        }
        planned = [
            (locked_apps[app.pk], _patched_app(locked_apps[app.pk], pb, action, metadata_action))
            for app, pb in patches
        ]
        out = []
        for locked, values in planned:
            for name, value in values.items():
                setattr(locked, name, value)
            locked.save()
            out.append(locked)
    return out
