from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "collectors_module.accounts"
    label = "accounts"

    def ready(self) -> None:
        # Inside ready(): these import models, which load only once the app registry is ready.
        from collectors_module.core import generations

        from .models import CaptureGrant, Key, User

        # Cached by every serving process (keys on each request, grants by the capture index).
        generations.watch(Key, ignore=("last_used_at",))
        generations.watch(User, ignore=("last_login", "password"))
        generations.watch(CaptureGrant)

        from . import auth  # imports the key model too: same reason

        auth.install()
