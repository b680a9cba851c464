"""Apps: the unit of tenancy for inputs, models, workflows and collectors."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Visibility(models.IntegerChoices):
    PRIVATE = 10, "Private"
    ORG = 30, "Organization"
    PUBLIC = 50, "Public"


class App(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="apps"
    )
    public_id = models.CharField(max_length=128)
    description = models.CharField(max_length=512, blank=True)
    notes = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    visibility = models.IntegerField(choices=Visibility.choices, default=Visibility.PRIVATE)
    created_at = models.DateTimeField(default=timezone.now)
    modified_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "public_id"], name="app_id_unique_per_owner")
        ]
        ordering = ["owner_id", "public_id"]

    def __str__(self) -> str:
        return f"{self.owner.username}/{self.public_id}"

    @property
    def is_public(self) -> bool:
        return self.visibility == Visibility.PUBLIC
