"""Tenant-scoped reads of users, keys and grants."""

from __future__ import annotations

from collectors_module.core.auth import digest_secret
from collectors_module.core.errors import not_found

from .models import CaptureGrant, Key, User


def user_by_user_id(user_id: str) -> User | None:
    return User.objects.filter(username=user_id, is_active=True).first()


def keys_of_user(user):
    return Key.objects.filter(owner=user).select_related("app").order_by("-created_at")


def key_of_user(user, public_id: str) -> Key | None:
    return keys_of_user(user).filter(public_id=public_id).first()


def has_active_grant(*, grantor_id: int, grantee_id: int) -> bool:
    return CaptureGrant.objects.filter(
        grantor_id=grantor_id, grantee_id=grantee_id, revoked_at__isnull=True
    ).exists()


def capture_grants_given(user):
    """Live grants `user` gave: who may capture `user`'s predictions."""
    return (
        CaptureGrant.objects.filter(grantor=user, revoked_at__isnull=True)
        .select_related("grantor", "grantee")
        .order_by("grantee__username")
    )


def capture_grants_received(user):
    """Live grants `user` received: whose predictions `user`'s collectors may capture."""
    return (
        CaptureGrant.objects.filter(grantee=user, revoked_at__isnull=True)
        .select_related("grantor", "grantee")
        .order_by("grantor__username")
    )


def api_keys_of_user(user):
    """The keys the API shows: revoked keys count as deleted (the web keys page still lists them)."""
    return keys_of_user(user).filter(revoked_at__isnull=True)


def key_for_api(user, key_id: str, *, allow_secret: bool = True) -> Key:
    """One of `user`'s live keys by public id (or by its secret); 11101 for anything else.

    The secret is accepted because PostKeys returns it as `id` (what Clarifai clients keep);
    callers that get the id from a URL path of a non-destructive request pass
    allow_secret=False, so a live secret is never invited into access logs.
    """

    keys = api_keys_of_user(user)
    key = keys.filter(public_id=key_id).first() if key_id else None
    if key is None and allow_secret and key_id and len(key_id) <= 512:
        key = keys.filter(digest=digest_secret(key_id)).first()
    if key is None:
        # Never echo something that may be a secret: only a well-formed public id is named.
        shown = key_id if len(key_id) == 32 and key_id.isalnum() else ""
        raise not_found("Key", shown)
    return key
