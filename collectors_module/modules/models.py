"""The module catalogue and its installations into apps."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from collectors_module.applications.models import Visibility


class Module(models.Model):
    slug = models.SlugField(max_length=64, unique=True)  # e.g. "collector"
    title = models.CharField(max_length=128)
    description = models.TextField(blank=True)
    # Scopes an installation's key receives when the user authorizes the module.
    required_scopes = models.JSONField(default=list)
    version = models.CharField(max_length=32, default="1.0.0")

    def __str__(self) -> str:
        return self.slug


class Installation(models.Model):
    module = models.ForeignKey(Module, on_delete=models.CASCADE, related_name="installations")
    app = models.ForeignKey(
        "applications.App", on_delete=models.CASCADE, related_name="installations"
    )
    slug = models.SlugField(max_length=64)  # destination URL suffix
    visibility = models.IntegerField(choices=Visibility.choices, default=Visibility.PRIVATE)
    installed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    key = models.ForeignKey(
        "accounts.Key", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["app", "slug"], name="install_slug_unique_per_app")
        ]

    def __str__(self) -> str:
        return f"{self.module.title} at {self.app.public_id}/{self.slug}"
