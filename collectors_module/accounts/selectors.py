"""Tenant-scoped reads of users, keys and grants."""

from __future__ import annotations

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
