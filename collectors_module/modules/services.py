"""Writers for module installations: install, authorize (creates the module's key), uninstall."""

from __future__ import annotations

import re

from django.db import IntegrityError, transaction

from collectors_module.accounts.models import Key
from collectors_module.accounts.services import CreatedKey, key_create, key_revoke
from collectors_module.applications.models import Visibility
from collectors_module.core.errors import SC, ApiError, not_found

from .models import Installation, Module

_SLUG_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
PLAN_MESSAGE = (
    "Modules such as Collectors are available on the Professional and Enterprise plans. "
    "Upgrade your plan to install and use them."
)


def check_plan(user) -> None:
    """Raise CONN_ACCOUNT_ISSUES unless the user's plan includes modules (Professional/Enterprise)."""
    if not getattr(user, "can_use_collectors", False):
        raise ApiError(SC.CONN_ACCOUNT_ISSUES, PLAN_MESSAGE)


def validate_install_slug(slug: str) -> str:
    """Normalise and check a destination URL suffix; raises ApiError(field='slug')."""
    slug = (slug or "").strip().lower()
    if not slug:
        raise ApiError(SC.MODULE_INVALID_ARGUMENT, "Choose a destination URL", field="slug")
    if not _SLUG_RE.fullmatch(slug):
        raise ApiError(
            SC.MODULE_INVALID_ARGUMENT,
            "Use 1-64 lower-case letters, digits, '-' or '_', starting with a letter or digit",
            field="slug",
        )
    return slug


def installation_create(
    *, module: Module, app, user, slug: str, visibility: int = Visibility.PRIVATE
) -> Installation:
    """Install `module` into `user`'s `app` at `slug` (unique per app). Not idempotent: a taken
    slug raises DATABASE_DUPLICATE_KEY(field='slug'); another user's app 'does not exist'."""
    check_plan(user)
    if app.owner_id != user.pk:
        raise not_found("App", app.public_id)
    slug = validate_install_slug(slug)
    try:
        visibility = int(visibility)
    except (TypeError, ValueError):
        visibility = -1
    if visibility not in Visibility.values:
        raise ApiError(SC.MODULE_INVALID_ARGUMENT, "Choose a visibility", field="visibility")
    try:
        with transaction.atomic():
            return Installation.objects.create(
                module=module, app=app, slug=slug, visibility=visibility, installed_by=user
            )
    except IntegrityError as exc:
        raise ApiError(
            SC.DATABASE_DUPLICATE_KEY,
            f"'{slug}' is already used by another installed module in this app; choose another URL",
            field="slug",
        ) from exc


def installation_is_authorized(installation: Installation) -> bool:
    """True when the installation holds a key that is neither revoked nor expired."""
    key = installation.key
    return key is not None and key.is_usable and key.owner_id == installation.app.owner_id


def installation_authorize(*, installation: Installation, user) -> CreatedKey:
    """Create the narrowest key that works for the installed module: an app key of the
    installation's app (it cannot act in the user's other apps) with exactly the module's
    required scopes, owned by `user`, stored on the installation (a previous key of the
    installation is revoked). Transactional; only the app owner may authorize (others get
    'does not exist')."""
    check_plan(user)
    with transaction.atomic():
        inst = (
            Installation.objects.select_for_update()
            .select_related("module", "app")
            .filter(pk=installation.pk, app__owner=user)
            .first()
        )
        if inst is None:
            raise not_found("Installed module", installation.slug)
        created = key_create(
            owner=user,
            scopes=list(inst.module.required_scopes),
            app=inst.app,
            description=f"{inst.module.title} module installed at {inst.app.public_id}/{inst.slug}",
        )
        if inst.key_id is not None:
            _revoke_own_key(user, inst.key_id)
        inst.key = created.key
        inst.save(update_fields=["key"])
    installation.key = created.key
    return created


def installation_uninstall(*, installation: Installation, user) -> None:
    """Delete the installation and revoke its key (idempotent for an already-revoked key).
    Collectors created through it stay; only the module's access ends."""
    with transaction.atomic():
        inst = (
            Installation.objects.select_for_update()
            .filter(pk=installation.pk, app__owner=user)
            .first()
        )
        if inst is None:
            raise not_found("Installed module", installation.slug)
        if inst.key_id is not None:
            _revoke_own_key(user, inst.key_id)
        inst.delete()


def _revoke_own_key(user, key_pk: int) -> None:
    """Revoke the installation's key if it is still `user`'s (through the accounts service)."""
    public_id = (
        Key.objects.filter(pk=key_pk, owner=user).values_list("public_id", flat=True).first()
    )
    if public_id:
        key_revoke(owner=user, key_public_id=public_id)
