"""Users (public `user_id` = username, plan) and keys (hashed secrets with Clarifai scopes)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone
from django.utils.crypto import salted_hmac


class Plan(models.TextChoices):
    COMMUNITY = "community", "Community"
    PROFESSIONAL = "professional", "Professional"
    ENTERPRISE = "enterprise", "Enterprise"


class User(AbstractUser):
    """A person or system account; `username` is the public Clarifai `user_id`."""

    plan = models.CharField(max_length=16, choices=Plan.choices, default=Plan.COMMUNITY)
    # Bumped by "log out everywhere": every session signed with the old value stops working.
    session_generation = models.PositiveIntegerField(default=0, db_default=0)

    def get_session_auth_hash(self) -> str:
        """Django checks this hash on every request of a session: it changes with the password
        (Django's rule) and with session_generation (log out on every device)."""
        return salted_hmac(
            "collectors.accounts.User.get_session_auth_hash",
            f"{self.password}:{self.session_generation}",
            algorithm="sha256",
        ).hexdigest()

    @property
    def user_id(self) -> str:
        return self.username

    @property
    def can_use_collectors(self) -> bool:
        return self.plan in (Plan.PROFESSIONAL, Plan.ENTERPRISE)


class KeyType(models.TextChoices):
    PAT = "personal_access_token", "Personal access token"
    APP = "app_specific_key", "App key"


class Key(models.Model):
    """An API key. Only the SHA-256 digest of the secret is stored; `public_id` is shown."""

    public_id = models.CharField(max_length=32, unique=True)
    digest = models.CharField(max_length=64, unique=True)
    last4 = models.CharField(max_length=4)
    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="keys")
    type = models.CharField(max_length=32, choices=KeyType.choices, default=KeyType.PAT)
    # App keys are bound to exactly one app; PATs act across the owner's apps.
    app = models.ForeignKey(
        "applications.App", null=True, blank=True, on_delete=models.CASCADE, related_name="keys"
    )
    description = models.CharField(max_length=256, blank=True)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["owner", "created_at"])]

    def __str__(self) -> str:
        return f"{self.public_id} ({self.description or self.type})"

    @property
    def display_name(self) -> str:
        """The one name pages and messages show for a key: its description and its public id."""
        return f"{self.description} ({self.public_id})" if self.description else self.public_id

    @property
    def is_usable(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def has_scopes(self, required) -> bool:
        have = set(self.scopes or [])
        return "All" in have or set(required) <= have

    def missing_scopes(self, required) -> list[str]:
        have = set(self.scopes or [])
        if "All" in have:
            return []
        return [s for s in required if s not in have]


class CaptureGrant(models.Model):
    """The caller's revocable consent that `grantee`'s collectors may capture their predictions."""

    grantor = models.ForeignKey(User, on_delete=models.CASCADE, related_name="grants_given")
    grantee = models.ForeignKey(User, on_delete=models.CASCADE, related_name="grants_received")
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["grantor", "grantee"],
                condition=models.Q(revoked_at__isnull=True),
                name="one_active_grant_per_pair",
            )
        ]

    def __str__(self) -> str:
        state = "revoked" if self.revoked_at else "active"
        return f"{self.grantor.username} -> {self.grantee.username} ({state})"
