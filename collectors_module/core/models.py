"""Core tables: the change generations that keep every process's caches honest."""

from __future__ import annotations

from django.db import models


class Generation(models.Model):
    """One row per watched table: a random value that database triggers replace whenever a row of
    that table is inserted, deleted or changed (see `core.generations`). Processes compare it with
    the value they saw to know that their cached copies of that table are stale."""

    topic = models.CharField(max_length=64, primary_key=True)
    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.topic}: {self.value}"
