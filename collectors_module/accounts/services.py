"""Writers for users, keys and capture grants."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from collectors_module.api.descriptors import all_scope_strings
from collectors_module.core import generations
from collectors_module.core.auth import digest_secret
from collectors_module.core.errors import SC, ApiError
from collectors_module.core.ids import new_hex_id, new_secret, validate_id

from .models import CaptureGrant, Key, KeyType, Plan, User


@dataclass
class CreatedKey:
    key: Key
    secret: str  # shown once; never stored


def user_create(
    *, user_id: str, password: str | None = None, plan: str = Plan.PROFESSIONAL, email: str = ""
) -> tuple[User, str]:
    """Create a user; returns (user, password). Raises ApiError on a bad or taken user_id."""
    validate_id(user_id, "user_id")
    if User.objects.filter(username=user_id).exists():
        raise ApiError(SC.DATABASE_DUPLICATE_KEY, f"User '{user_id}' already exists")
    password = password or secrets.token_urlsafe(12)
    user = User.objects.create_user(username=user_id, password=password, email=email, plan=plan)
    return user, password


def user_set_plan(*, user: User, plan: str) -> User:
    """Change a user's plan (no billing here); an unknown plan raises CONN_INVALID_REQUEST."""
    if plan not in Plan.values:
        raise ApiError(SC.CONN_INVALID_REQUEST, f"Unknown plan '{plan}'", field="plan")
    User.objects.filter(pk=user.pk).update(plan=plan)
    generations.changed(User._meta.db_table)
    user.plan = plan
    return user


def validate_scopes(scopes: list[str]) -> list[str]:
    known = set(all_scope_strings())
    scopes = list(dict.fromkeys(s.strip() for s in scopes if s and s.strip()))
    if not scopes:
        raise ApiError(SC.CONN_INVALID_REQUEST, "A key needs at least one scope", field="scopes")
    unknown = [s for s in scopes if s not in known]
    if unknown:
        raise ApiError(
            SC.CONN_INVALID_REQUEST, f"Unknown scopes: {', '.join(unknown)}", field="scopes"
        )
    return scopes


def key_create(
    *, owner: User, scopes: list[str], description: str = "", app=None, expires_at=None
) -> CreatedKey:
    """Create a PAT (app=None) or an app key; the secret is returned once, only its digest kept."""
    if app is not None and app.owner_id != owner.pk:
        raise ApiError(SC.CONN_DOES_NOT_EXIST, "App does not exist")
    if expires_at is not None and expires_at <= timezone.now():
        raise ApiError(
            SC.CONN_INVALID_REQUEST, "expires_at must be in the future", field="expires_at"
        )
    scopes = validate_scopes(scopes)
    secret = new_secret()
    key = Key.objects.create(
        public_id=new_hex_id(),
        digest=digest_secret(secret),
        last4=secret[-4:],
        owner=owner,
        type=KeyType.APP if app is not None else KeyType.PAT,
        app=app,
        description=description[:256],
        scopes=scopes,
        expires_at=expires_at,
    )
    return CreatedKey(key=key, secret=secret)


def key_revoke(*, owner: User, key_public_id: str) -> Key:
    """Revoke one of `owner`'s keys (idempotent). Another user's key 'does not exist'."""
    with transaction.atomic():
        key = Key.objects.select_for_update().filter(owner=owner, public_id=key_public_id).first()
        if key is None:
            raise ApiError(SC.CONN_DOES_NOT_EXIST, f"Key '{key_public_id}' does not exist")
        if key.revoked_at is None:
            key.revoked_at = timezone.now()
            key.save(update_fields=["revoked_at"])
    return key


def user_logout_everywhere(*, user: User) -> None:
    """End every session of `user` on every device (their session hashes stop matching)."""
    User.objects.filter(pk=user.pk).update(session_generation=F("session_generation") + 1)
    user.refresh_from_db(fields=["session_generation"])


def grant_capture(*, grantor: User, grantee: User) -> CaptureGrant:
    """`grantor` consents that `grantee`'s collectors capture their predictions (idempotent)."""
    grant = CaptureGrant.objects.filter(
        grantor=grantor, grantee=grantee, revoked_at__isnull=True
    ).first()
    if grant is None:
        grant = CaptureGrant.objects.create(grantor=grantor, grantee=grantee)
        generations.changed(CaptureGrant._meta.db_table)
    return grant


def capture_grant_create(*, grantor: User, grantee_user_id: str) -> CaptureGrant:
    """The account page's and the API's grant: GRANTEE's collectors may capture `grantor`'s
    predictions. Raises ApiError (field grantee_user_id) for an unknown user or oneself."""
    field = "grantee_user_id"
    grantee_user_id = (grantee_user_id or "").strip()
    if not grantee_user_id:
        raise ApiError(SC.CONN_INVALID_REQUEST, "Name the user to grant capture to", field=field)
    validate_id(grantee_user_id, "grantee_user_id", field=field)
    if grantee_user_id == grantor.username:
        raise ApiError(
            SC.CONN_INVALID_REQUEST,
            "Your own collectors capture your predictions without a grant",
            field=field,
        )
    grantee = User.objects.filter(username=grantee_user_id, is_active=True).first()
    if grantee is None:
        raise ApiError(
            SC.CONN_DOES_NOT_EXIST, f"User '{grantee_user_id[:64]}' does not exist", field=field
        )
    with transaction.atomic():
        return grant_capture(grantor=grantor, grantee=grantee)


def capture_grant_revoke(*, grantor: User, grantee_user_id: str) -> int:
    grantee = User.objects.filter(username=(grantee_user_id or "")[:150]).first()
    if grantee is None:
        raise ApiError(SC.CONN_DOES_NOT_EXIST, f"User '{grantee_user_id[:64]}' does not exist")
    n = revoke_capture_grant(grantor=grantor, grantee=grantee)
    if not n:
        raise ApiError(
            SC.CONN_DOES_NOT_EXIST,
            f"You have not granted capture to '{grantee_user_id[:64]}'",
        )
    return n


def revoke_capture_grant(*, grantor: User, grantee: User) -> int:
    """Withdraw consent; matching stops within CACHE_CHECK_SECONDS in every process (at once in
    this one). Returns grants revoked."""
    n = CaptureGrant.objects.filter(
        grantor=grantor, grantee=grantee, revoked_at__isnull=True
    ).update(revoked_at=timezone.now())
    generations.changed(CaptureGrant._meta.db_table)
    return n


@dataclass
class KeySpec:
    """What one new key should be (validated by `keys_create`)."""

    scopes: list[str]
    description: str = ""
    app: object | None = None  # applications.App for an app key, None for a PAT
    expires_at: object | None = None  # aware datetime or None (never expires)


KEYS_DELETE_SCOPE = "Keys:Delete"


def check_grantable(*, granting_scopes: list[str], scopes: list[str]) -> None:
    """A key may only hand out scopes it holds itself (`All` holds everything); raises 11007."""
    have = set(granting_scopes or [])
    if "All" in have:
        return
    missing = [s for s in scopes if s not in have]
    if missing:
        raise ApiError(
            SC.CONN_INSUFFICIENT_SCOPES,
            f"This key cannot grant scopes it does not have: {', '.join(missing)}",
            field="scopes",
        )


def keys_create(
    *, owner: User, specs: list[KeySpec], granting_scopes: list[str] | None = None
) -> list[CreatedKey]:
    """Create several keys all-or-nothing (one transaction); secrets returned once.

    With `granting_scopes` (the calling key's scopes) no new key may exceed them (11007).
    """
    if not specs:
        raise ApiError(SC.CONN_INVALID_REQUEST, "keys must hold at least one key", field="keys")
    for spec in specs:
        spec.scopes = validate_scopes(spec.scopes)
        if granting_scopes is not None:
            check_grantable(granting_scopes=granting_scopes, scopes=spec.scopes)
    with transaction.atomic():
        return [
            key_create(
                owner=owner,
                scopes=s.scopes,
                description=s.description,
                app=s.app,
                expires_at=s.expires_at,
            )
            for s in specs
        ]


_UNSET = object()


def key_update(
    *,
    owner: User,
    key_public_id: str,
    action: str = "overwrite",
    description: str | None = None,
    scopes: list[str] | None = None,
    expires_at=_UNSET,
    granting_scopes: list[str] | None = None,
    acting_key: Key | None = None,
) -> Key:
    """Change a live key's description, scopes or expiry (transactional).

    action: 'overwrite' replaces what is given, 'merge' adds scopes, 'remove' drops scopes.
    A revoked or another user's key is 11101; a key keeps at least one scope.
    An expiry may be set or brought forward, never extended or removed. With `acting_key`
    (the API key making the change), changing another key needs at least that key's scopes
    plus Keys:Delete: whoever could delete a key may cut it, nobody else (11007).
    """
    if action not in ("overwrite", "merge", "remove"):
        raise ApiError(
            SC.CONN_INVALID_REQUEST,
            "action must be 'overwrite', 'merge' or 'remove'",
            field="action",
        )
    with transaction.atomic():
        key = (
            Key.objects.select_for_update()
            .filter(owner=owner, public_id=key_public_id, revoked_at__isnull=True)
            .first()
        )
        if key is None:
            raise ApiError(SC.CONN_DOES_NOT_EXIST, f"Key '{key_public_id[:64]}' does not exist")
        if acting_key is not None and acting_key.pk != key.pk:
            check_grantable(
                granting_scopes=acting_key.scopes, scopes=[*key.scopes, KEYS_DELETE_SCOPE]
            )
        if scopes:
            if action == "remove":
                new_scopes = [s for s in key.scopes if s not in set(scopes)]
                if not new_scopes:
                    raise ApiError(
                        SC.CONN_INVALID_REQUEST, "A key needs at least one scope", field="scopes"
                    )
            else:
                wanted = validate_scopes(scopes)
                if granting_scopes is not None:
                    check_grantable(granting_scopes=granting_scopes, scopes=wanted)
                new_scopes = (
                    wanted if action == "overwrite" else list(dict.fromkeys([*key.scopes, *wanted]))
                )
            key.scopes = new_scopes
        if description is not None and action != "remove":
            key.description = description[:256]
        if expires_at is not _UNSET and action != "remove":
            if expires_at is not None and expires_at <= timezone.now():
                raise ApiError(
                    SC.CONN_INVALID_REQUEST, "expires_at must be in the future", field="expires_at"
                )
            if key.expires_at is not None and (expires_at is None or expires_at > key.expires_at):
                raise ApiError(
                    SC.CONN_INVALID_REQUEST,
                    "A key's expiry can only be brought forward, never extended or removed; "
                    "create a new key instead",
                    field="expires_at",
                )
            key.expires_at = expires_at
        key.save(update_fields=["scopes", "description", "expires_at"])
    return key
