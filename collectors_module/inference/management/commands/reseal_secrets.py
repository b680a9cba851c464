"""Re-seal stored remote-model API keys with the newest REMOTE_MODEL_SECRET_KEYS key (rotation:
put the new key first, run this, then drop the old key)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from collectors_module.inference.services import reseal_model_secrets


class Command(BaseCommand):
    help = "Re-seal remote model API keys with the first key of REMOTE_MODEL_SECRET_KEYS."

    def handle(self, *args, **options):
        count = reseal_model_secrets()
        self.stdout.write(f"re-sealed {count} remote model API key(s)")
