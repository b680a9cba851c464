"""`python manage.py backfill_fingerprints [--app USER/APP] [--batch N]`: fingerprint the inputs
created before near-duplicate lookups existed, so collectors find them as duplicates too."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from collectors_module.applications.models import App
from collectors_module.inputs.services import fingerprints_backfill


class Command(BaseCommand):
    help = (
        "Add the near-duplicate fingerprints (exact hash, normalised text, image pHash) of the "
        "inputs that have none. Batched, safe to stop and run again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--app", default="", help="only this app, as user_id/app_id")
        parser.add_argument("--batch", type=int, default=500, help="inputs per batch (1-5000)")

    def handle(self, *args, **opts):
        batch = opts["batch"]
        if not 1 <= batch <= 5000:
            raise CommandError("--batch must be between 1 and 5000")
        app_id = None
        if opts["app"]:
            user_id, _, public_id = opts["app"].partition("/")
            app = App.objects.filter(owner__username=user_id, public_id=public_id).first()
            if app is None or not public_id:
                raise CommandError(f"no app {opts['app']!r} (give it as user_id/app_id)")
            app_id = app.pk

        def progress(done: int) -> None:
            self.stdout.write(f"{done} inputs fingerprinted")

        done = fingerprints_backfill(batch=batch, app_id=app_id, progress=progress)
        self.stdout.write(self.style.SUCCESS(f"done: {done} inputs had no fingerprint"))
